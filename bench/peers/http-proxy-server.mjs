// http-proxy (the npm package) as a plain pass-through forward proxy: the Node peer.
// A keep-alive agent, or http-proxy sends Connection: close to the origin on every request.
import * as http from 'node:http';
import httpProxy from 'http-proxy';

const port = Number(process.argv[2]);
const agent = new http.Agent({ keepAlive: true, maxSockets: 256, maxFreeSockets: 256 });
const proxy = httpProxy.createProxyServer({ agent, xfwd: false });
proxy.on('error', (err, req, res) => {
  if (res.headersSent) return res.destroy();
  res.writeHead(502, { 'content-type': 'text/plain' });
  res.end(`bad gateway: ${err.message}\n`);
});
http
  .createServer((req, res) => {
    let target;
    try {
      target = new URL(req.url);
    } catch {
      res.writeHead(400);
      return res.end('absolute-form request target expected\n');
    }
    req.url = target.pathname + target.search; // origin-form upstream
    proxy.web(req, res, { target: target.origin });
  })
  .listen(port, '127.0.0.1', () => console.log(`http-proxy listening on ${port}`));
