import type { Facets, ItemList, SearchQuery } from '@nondivy/contracts';
import { AppError, unavailable } from '@nondivy/errors';

/** What the gateway asks of the catalog. */
export interface CatalogApi {
  search(query: SearchQuery): Promise<ItemList>;
  facets(query: SearchQuery): Promise<Facets>;
}

/**
 * The gateway's client of the catalog service (searches, browsing, facets). A catalog that does not
 * answer within the timeout, or answers 5xx, is `unavailable` (503 to the caller); its 4xx answers
 * keep their meaning.
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
      throw unavailable('The catalogue is unavailable; uploads and downloads still work', err);
    }
    if (res.status >= 500) {
      await res.body?.cancel();
      throw unavailable('The catalogue is unavailable; uploads and downloads still work');
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
