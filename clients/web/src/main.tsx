import { render } from 'preact';
import { useEffect } from 'preact/hooks';
import { Icon } from './icons.js';
import { onLinkClick, useRoute } from './router.js';
import { me, refreshMe, toast } from './state.js';
import { startUploadsWarning } from './uploads.js';
import { AccountView } from './views/account.js';
import { AdminView } from './views/admin.js';
import { ItemView } from './views/item.js';
import { LibraryView } from './views/library.js';
import { LoginView } from './views/login.js';
import { NearbyView } from './views/nearby.js';
import { RemoteItemView } from './views/sites.js';
import { UploadView } from './views/upload.js';
import './styles.css';

function Header() {
  const user = me.use();
  const route = useRoute();
  const current = (name: string) => (route.name === name ? 'page' : undefined);
  return (
    <header class="top">
      <a class="brand" href="/" onClick={onLinkClick} aria-label="Nondivy library, home">
        <Icon name="library" size={24} />
        <span>Nondivy</span>
      </a>
      <nav aria-label="Main">
        <a href="/" onClick={onLinkClick} aria-current={current('library')}>
          Library
        </a>
        <a href="/upload" onClick={onLinkClick} aria-current={current('upload')}>
          Upload
        </a>
        <a href="/nearby" onClick={onLinkClick} aria-current={current('nearby')}>
          Nearby
        </a>
        {user?.role === 'admin' && (
          <a href="/admin" onClick={onLinkClick} aria-current={current('admin')}>
            Users
          </a>
        )}
        {user ? (
          <a href="/account" onClick={onLinkClick} aria-current={current('account')} class="who">
            <Icon name="user" />
            <span>{user.username}</span>
          </a>
        ) : (
          <a href="/login" onClick={onLinkClick} aria-current={current('login')}>
            Log in
          </a>
        )}
      </nav>
    </header>
  );
}

function Toast() {
  const t = toast.use();
  return (
    <div class="toast-area" role="status" aria-live="polite">
      {t && (
        <p class="toast" key={t.id}>
          {t.text}
        </p>
      )}
    </div>
  );
}

function App() {
  const route = useRoute();
  useEffect(() => {
    void refreshMe();
    startUploadsWarning();
  }, []);
  useEffect(() => {
    document.getElementById('main')?.focus({ preventScroll: true });
  }, [route.name, route.name === 'item' ? route.id : '']);
  let view;
  switch (route.name) {
    case 'library':
      view = <LibraryView query={route.query} />;
      break;
    case 'item':
      view = <ItemView id={route.id} />;
      break;
    case 'remote':
      view = <RemoteItemView siteId={route.siteId} id={route.id} />;
      break;
    case 'upload':
      view = <UploadView />;
      break;
    case 'nearby':
      view = <NearbyView />;
      break;
    case 'login':
      view = <LoginView next={route.next} />;
      break;
    case 'account':
      view = <AccountView />;
      break;
    case 'admin':
      view = <AdminView />;
      break;
    default:
      view = (
        <section class="panel">
          <h1>Page not found</h1>
          <p>
            <a href="/" onClick={onLinkClick}>
              Back to the library
            </a>
          </p>
        </section>
      );
  }
  return (
    <>
      <a class="skip" href="#main">
        Skip to content
      </a>
      <Header />
      <main id="main" tabIndex={-1}>
        {view}
      </main>
      <Toast />
    </>
  );
}

render(<App />, document.getElementById('app')!);
