import * as http from 'node:http';
import type { Duplex } from 'node:stream';
import { countBytes } from './forward';

/**
 * The answers the proxy writes itself: a readable text body, never cached downstream. One shape
 * for the three ways they leave: through a ServerResponse, as bytes on a quick-path connection,
 * and raw on a socket outside Node's response machinery (CONNECT, Upgrade, parse errors).
 */

/** A readable error or notice as a response body: the message, ending in a newline. */
function textBody(message: string): Buffer {
  return Buffer.from(message.endsWith('\n') ? message : message + '\n');
}

/** A status line and header fields through the blank line. `fields` holds raw [name, value, ...] pairs. */
export function rawHead(status: number, reason: string | undefined, fields: readonly string[]): string {
  let head = `HTTP/1.1 ${status} ${reason || http.STATUS_CODES[status] || 'Unknown'}\r\n`;
  for (let i = 0; i < fields.length; i += 2) head += `${fields[i]}: ${fields[i + 1]}\r\n`;
  return head + '\r\n';
}

function textFields(body: Buffer, extra: Record<string, string> | undefined): string[] {
  const fields = ['Content-Type', 'text/plain; charset=utf-8', 'Content-Length', String(body.length), 'Cache-Control', 'no-store'];
  if (extra) for (const name in extra) fields.push(name, extra[name]);
  return fields;
}

export function sendText(res: http.ServerResponse, status: number, message: string, headers: Record<string, string> = {}): void {
  const body = textBody(message);
  res.writeHead(status, {
    'Content-Type': 'text/plain; charset=utf-8',
    'Content-Length': body.length,
    'Cache-Control': 'no-store',
    ...headers,
  });
  countBytes(res, body.length);
  res.end(body);
}

/** sendText's answer as bytes, for a quick-path connection (it stays open). */
export function quickTextResponse(method: string, status: number, message: string, cacheStatus: string): Buffer {
  const body = textBody(message);
  const extra: Record<string, string> = cacheStatus ? { 'Cache-Status': `caching-proxy; ${cacheStatus}` } : {};
  extra.Date = new Date().toUTCString();
  const head = Buffer.from(rawHead(status, undefined, textFields(body, extra)), 'latin1');
  return method === 'HEAD' ? head : Buffer.concat([head, body]);
}

/** A text answer written straight to a socket, which is then ended (CONNECT, Upgrade, parse errors). */
export function writeRawResponse(socket: Duplex, status: number, message: string, headers: Record<string, string> = {}): void {
  const body = textBody(message);
  socket.end(Buffer.concat([Buffer.from(rawHead(status, undefined, textFields(body, { Connection: 'close', ...headers })), 'latin1'), body]));
}
