// Service worker of SecondOpinion, served as /sw.js so that its scope is the whole site.
// secondopinion/api/pwa.py fills in the values in double underscores.
//
// It stores only the offline page and the logo, at install. It never writes any other response to a
// cache, so examinations, images, reports and DICOM files never reach the Cache Storage of the device.
// Every other request goes to the network, as if there were no worker.

const CACHE_PREFIX = '__CACHE_PREFIX__';
const CACHE_NAME = '__CACHE_NAME__';
const OFFLINE_URL = '__OFFLINE_URL__';
const SHELL_URLS = __SHELL_URLS__;
// Navigations under these prefixes (downloads, sign-in links, NiceGUI's own routes) are left to the browser
// completely, so that their responses never pass through the worker.
const UNTOUCHED_PREFIXES = __UNTOUCHED_PREFIXES__;

self.addEventListener('install', (event) => {
  // `cache: 'reload'` skips the HTTP cache, so the stored copies are the ones of this version.
  event.waitUntil(
    caches.open(CACHE_NAME)
      .then((cache) => cache.addAll(SHELL_URLS.map((url) => new Request(url, {cache: 'reload'}))))
      .then(() => self.skipWaiting()),
  );
});

self.addEventListener('activate', (event) => {
  event.waitUntil(
    caches.keys()
      .then((names) => Promise.all(names
        .filter((name) => name.startsWith(CACHE_PREFIX) && name !== CACHE_NAME)
        .map((name) => caches.delete(name))))
      .then(() => self.clients.claim()),
  );
});

function fromShellCache(url) {
  return caches.open(CACHE_NAME)
    .then((cache) => cache.match(url))
    .then((response) => response || Response.error());
}

self.addEventListener('fetch', (event) => {
  const request = event.request;
  if (request.method !== 'GET') return;
  const url = new URL(request.url);
  if (url.origin !== self.location.origin) return;

  // The logo and the offline page: from the network, and from the install-time copy when offline.
  if (url.search === '' && SHELL_URLS.includes(url.pathname)) {
    event.respondWith(fetch(request).catch(() => fromShellCache(url.pathname)));
    return;
  }

  // A page: from the network, and the offline page in its place when the network fails.
  if (request.mode === 'navigate' && !UNTOUCHED_PREFIXES.some((prefix) => url.pathname.startsWith(prefix))) {
    event.respondWith(fetch(request).catch(() => fromShellCache(OFFLINE_URL)));
  }
  // Anything else gets no response from the worker, so the browser fetches it as usual.
});
