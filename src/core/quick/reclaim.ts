/**
 * Taking a connection back from Node's HTTP server once it is idle. A connection whose first
 * request the quick path declined (a miss, a revalidation, a POST) is read by Node's parser;
 * without this, a browser's connection that began with a miss would answer all its later hits
 * the ordinary way. When the last response owed on it has closed and the parser is between
 * messages (no byte of a next request read), the parser is detached exactly as Node detaches it
 * for an upgrade, and the quick path reads the connection again.
 *
 * This leans on Node's own parts: the parser on `socket.parser`, its `duration()` (0 between
 * messages) and `_http_common`'s freeParser. Where any of them is missing, nothing is taken back.
 */
import * as net from 'node:net';

interface NodeParser {
  duration?(): number;
  _consumed?: boolean;
}
type ParsedSocket = net.Socket & {
  parser?: NodeParser | null;
  _httpMessage?: unknown;
  _handle?: { _consumed?: boolean } | null;
  [NODE_LISTENERS]?: Map<string, ((...args: unknown[]) => void)[]>;
};

const NODE_LISTENERS = Symbol('caching-proxy.node-listeners');
/** The events Node's HTTP server listens to on a connection it reads. */
const EVENTS = ['data', 'end', 'close', 'drain', 'error', 'timeout', 'pause', 'resume'] as const;

let freeParser: ((parser: NodeParser, req: null, socket: net.Socket) => void) | null | undefined;
function nodeFreeParser(): typeof freeParser {
  if (freeParser === undefined) {
    try {
      freeParser = (require('_http_common') as { freeParser?: typeof freeParser }).freeParser ?? null;
    } catch {
      freeParser = null;
    }
  }
  return freeParser;
}

/** Hands `socket` to Node's HTTP server, remembering which listeners that added (so they can be removed later). */
export function giveToNode(socket: net.Socket, connect: () => void): void {
  const before = new Map(EVENTS.map((e) => [e, socket.listeners(e)]));
  connect();
  const added = new Map<string, ((...args: unknown[]) => void)[]>();
  for (const e of EVENTS) added.set(e, socket.listeners(e).filter((l) => !before.get(e)!.includes(l)) as ((...args: unknown[]) => void)[]);
  (socket as ParsedSocket)[NODE_LISTENERS] = added;
}

/**
 * Detaches Node's HTTP server from an idle connection it reads. Returns false (and changes
 * nothing) unless the connection is a plain TCP socket between messages with nothing left to write.
 */
export function takeFromNode(socket: net.Socket): boolean {
  const s = socket as ParsedSocket;
  const parser = s.parser;
  const listeners = s[NODE_LISTENERS];
  const free = nodeFreeParser();
  if (!parser || !listeners || !free || typeof parser.duration !== 'function') return false;
  // A TLS socket (an intercepted connection) is never read by the quick path.
  if (socket.constructor !== net.Socket || socket.destroyed || !socket.readable || !socket.writable) return false;
  if (s._httpMessage || socket.writableLength > 0 || parser.duration() !== 0) return false;
  for (const [event, added] of listeners) for (const l of added) socket.removeListener(event, l);
  s[NODE_LISTENERS] = undefined;
  free(parser, null, socket);
  // The next hand-over lets a new parser read the handle natively again.
  if (s._handle) s._handle._consumed = false;
  return true;
}
