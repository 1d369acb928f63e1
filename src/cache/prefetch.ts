import { Parser } from 'htmlparser2';

/** Attributes that reference a resource a page needs or links to. */
const LINK_ATTRIBUTES: Record<string, readonly string[]> = {
  a: ['href'],
  link: ['href'],
  script: ['src'],
  img: ['src'],
  source: ['src'],
  video: ['src', 'poster'],
  audio: ['src'],
  iframe: ['src'],
  embed: ['src'],
  track: ['src'],
  input: ['src'],
};

/**
 * Same-origin http(s) URLs an HTML page references through href/src, in document order, without
 * duplicates, fragments or the page itself. A real tokenizer, so comments, scripts and odd
 * quoting do not produce phantom links; a <base href> is honoured.
 */
export function extractSameOriginLinks(html: string, pageUrl: string, limit: number): string[] {
  const page = new URL(pageUrl);
  let base = page;
  const seen = new Set<string>([stripHash(page)]);
  const out: string[] = [];
  const parser = new Parser(
    {
      onopentag(name, attributes) {
        if (out.length >= limit) return;
        if (name === 'base' && attributes.href) {
          try {
            base = new URL(attributes.href, page);
          } catch {
            // Ignore a malformed <base>.
          }
          return;
        }
        const names = LINK_ATTRIBUTES[name];
        if (!names) return;
        for (const attr of names) {
          const value = attributes[attr];
          if (!value || out.length >= limit) continue;
          let url: URL;
          try {
            url = new URL(value.trim(), base);
          } catch {
            continue;
          }
          if (url.origin !== page.origin || (url.protocol !== 'http:' && url.protocol !== 'https:')) continue;
          const href = stripHash(url);
          if (seen.has(href)) continue;
          seen.add(href);
          out.push(href);
        }
      },
    },
    { decodeEntities: true, lowerCaseTags: true, lowerCaseAttributeNames: true },
  );
  parser.write(html);
  parser.end();
  return out;
}

function stripHash(url: URL): string {
  const u = new URL(url.href);
  u.hash = '';
  return u.href;
}

/** Prefetches running at once: a page with 50 images must not open 50 origin connections. */
const PREFETCH_CONCURRENCY = 4;
/** HTML pages larger than this are not parsed for prefetch links. */
const PREFETCH_MAX_HTML = 2 * 1024 * 1024;
/** Links waiting to be prefetched; beyond this, new pages' links are dropped (browsing outpaces the origin). */
const PREFETCH_QUEUE_MAX = 1000;

/** A stored page, as far as prefetching needs it. */
export interface StoredPage {
  url: string;
  size: number;
  body: Buffer | null;
}

/**
 * Fetches the same-origin links of stored HTML pages in the background, a few at a time.
 * `known`: the link is stored or being fetched already; `fetch`: fetches and stores one link.
 */
export class Prefetcher {
  private queue: string[] = [];
  private running = 0;
  private closed = false;

  constructor(
    private readonly known: (href: string) => boolean,
    private readonly fetch: (href: string) => Promise<void>,
  ) {}

  /** Queues up to `limit` links of a page just stored. */
  pageStored(page: StoredPage, limit: number): void {
    if (!page.body || page.size > PREFETCH_MAX_HTML) return;
    let links: string[];
    try {
      links = extractSameOriginLinks(page.body.toString('utf8'), page.url, limit);
    } catch {
      return;
    }
    for (const link of links) {
      if (this.queue.length >= PREFETCH_QUEUE_MAX) break;
      if (this.known(link) || this.queue.includes(link)) continue;
      this.queue.push(link);
    }
    this.pump();
  }

  close(): void {
    this.closed = true;
    this.queue = [];
  }

  private pump(): void {
    while (!this.closed && this.running < PREFETCH_CONCURRENCY && this.queue.length) {
      const link = this.queue.shift()!;
      if (this.known(link)) continue;
      this.running++;
      void this.fetch(link).then(() => {
        this.running--;
        this.pump();
      });
    }
  }
}
