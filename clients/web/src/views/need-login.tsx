import { onLinkClick } from '../router.js';

/** What a guest sees on a page that needs an account, with the way to log in and come back. */
export function NeedLogin({ next, what }: { next: string; what: string }) {
  return (
    <section class="panel narrow">
      <h1>Log in first</h1>
      <p>You need to be logged in to {what}.</p>
      <p>
        <a class="button primary" href={`/login?next=${encodeURIComponent(next)}`} onClick={onLinkClick}>
          Log in
        </a>
      </p>
    </section>
  );
}
