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
