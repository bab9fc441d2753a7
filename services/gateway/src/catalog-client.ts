import type { Facets, ItemList, SearchQuery } from '@nondivy/contracts';
import { AppError, unavailable } from '@nondivy/errors';

/** What the gateway asks of the catalog. */
export interface CatalogApi {
  search(query: SearchQuery): Promise<ItemList>;
  facets(query: SearchQuery): Promise<Facets>;
}

/** The catalog's own problem detail, shortened: its messages are safe to show by design. */
async function detailOf(res: Response): Promise<string> {
  const body = (await res.json().catch(() => ({}))) as { detail?: unknown };
  const detail = typeof body.detail === 'string' && body.detail.trim() ? body.detail.trim().slice(0, 200) : `it answered ${res.status}`;
  return detail.charAt(0).toLowerCase() + detail.slice(1);
}

/**
 * The gateway's client of the catalog service (searches, browsing, facets). A catalog that does not
 * answer within the timeout, or answers 5xx, is `unavailable` (503 to the caller); its 4xx answers
 * keep their meaning. The 503's detail says which part is down: the catalog service itself (nothing
 * else is then implied), or what the catalog reports as down behind it (usually the database, which
 * uploads and downloads need too — so no promise is made about them).
 */
export class CatalogClient implements CatalogApi {
  constructor(
    private readonly baseUrl: string,
    private readonly timeoutMs = 2000,
  ) {}

  // The answer is not parsed again here: the gateway's route validates it on the way out.
  private async get<T>(path: string, query: SearchQuery): Promise<T> {
    const url = new URL(path, this.baseUrl);
    for (const [k, v] of Object.entries(query)) {
      if (v === undefined || k === 'scope') continue;
      for (const one of Array.isArray(v) ? v : [v]) url.searchParams.append(k, String(one));
    }
    let res: Response;
    try {
      res = await fetch(url, { signal: AbortSignal.timeout(this.timeoutMs) });
    } catch (err) {
      throw unavailable('The catalog service does not answer: searching and browsing are unavailable', err);
    }
    if (res.status >= 500) {
      throw unavailable(`The catalog service cannot search right now: ${await detailOf(res)}`);
    }
    const body = (await res.json().catch(() => ({}))) as { detail?: string; errors?: unknown };
    if (res.status >= 400) {
      throw new AppError(res.status === 404 ? 'not_found' : 'bad_input', body.detail ?? 'Invalid query', {
        details: body.errors ? { errors: body.errors } : undefined,
      });
    }
    return body as T;
  }

  search(query: SearchQuery): Promise<ItemList> {
    return this.get('/internal/v1/search', query);
  }

  facets(query: SearchQuery): Promise<Facets> {
    return this.get('/internal/v1/facets', query);
  }
}
