import { useEffect, useState } from 'preact/hooks';

/**
 * Hash routes (#/instances/<id>): the API process serves one index.html at `/` and needs no
 * knowledge of the console's pages.
 */
const current = (): string[] => location.hash.replace(/^#\/?/, '').split('/').filter(Boolean).map(decodeURIComponent);

export function useRoute(): string[] {
  const [route, setRoute] = useState(current);
  useEffect(() => {
    const onChange = () => setRoute(current());
    addEventListener('hashchange', onChange);
    return () => removeEventListener('hashchange', onChange);
  }, []);
  return route;
}

export const href = (...segments: string[]): string => `#/${segments.map(encodeURIComponent).join('/')}`;
