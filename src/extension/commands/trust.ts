import { fork } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import * as path from 'node:path';
import * as vscode from 'vscode';
import { CA_BUNDLE_FILE, CA_FILE, CA_KEY_FILE } from '../../core/tls/names';
import type { CommandGroup } from './command';

/** Makes the CA with the bundled CLI (`caching-proxy ca`), so the editor's process never loads the certificate code. */
function makeCa(cli: string, caDir: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = fork(cli, ['ca', '--ca-dir', caDir], { env: { ...process.env, ELECTRON_RUN_AS_NODE: '1' }, execArgv: [], stdio: ['ignore', 'pipe', 'pipe', 'ipc'] });
    let stderr = '';
    child.stderr?.setEncoding('utf8').on('data', (s: string) => (stderr += s));
    child.once('error', reject);
    child.once('exit', (code) => (code === 0 ? resolve() : reject(new Error(stderr.trim() || `caching-proxy ca exited with ${code}`))));
  });
}

function howToTrust(certPath: string, fingerprint: string, validTo: string, caDir: string): string {
  return `# Trusting Caching Proxy's HTTPS certificate

Caching Proxy decrypts (and caches) HTTPS only for the hosts in \`cachingProxy.https.intercept\`.
Clients must trust its local certificate authority for those hosts:

- Certificate: \`${certPath}\`
- SHA-256 fingerprint: \`${fingerprint}\`
- Valid until: ${validTo}

## Already done for you
New integrated terminals, while interception is on, get \`NODE_EXTRA_CA_CERTS\` (this CA) and
\`SSL_CERT_FILE\`, \`REQUESTS_CA_BUNDLE\`, \`CURL_CA_BUNDLE\`, \`GIT_SSL_CAINFO\`, \`PIP_CERT\`,
\`AWS_CA_BUNDLE\`, \`CARGO_HTTP_CAINFO\`, \`DENO_CERT\`, \`npm_config_cafile\` pointing at
\`${path.join(caDir, CA_BUNDLE_FILE)}\` (the system's roots plus this CA): node, npm, curl, git, pip just work.

## A browser
- **Chrome, Edge, Chromium**: Settings → Privacy and security → Security → Manage certificates →
  Authorities → Import, pick \`${CA_FILE}\`, tick "Trust this certificate for identifying websites".
  (On Linux: a separate profile, e.g. \`--user-data-dir\`, keeps the trust away from your everyday browsing.)
- **Firefox**: Settings → Privacy & Security → Certificates → View Certificates → Authorities → Import.

## The whole system (every program of every user: think twice)
- Debian, Ubuntu: \`sudo cp "${certPath}" /usr/local/share/ca-certificates/caching-proxy.crt && sudo update-ca-certificates\`
- Fedora: \`sudo cp "${certPath}" /etc/pki/ca-trust/source/anchors/caching-proxy.pem && sudo update-ca-trust\`
- macOS: \`sudo security add-trusted-cert -d -r trustRoot -k /Library/Keychains/System.keychain "${certPath}"\`
- Windows: \`certutil -addstore -user Root "${certPath}"\`

## Risks
Anyone who holds \`${CA_KEY_FILE}\` (owner-only, beside the certificate) can impersonate any site to
whatever trusts this CA. Trust it only where you use the proxy. To revoke: delete \`${caDir}\` and
remove the certificate from what trusts it; a new CA is made the next time interception is used.
Certificate-pinned clients refuse any CA: list their hosts in \`cachingProxy.https.tunnel\`.
`;
}

/** Caching Proxy: Trust HTTPS Certificate…: the CA's path and fingerprint, copied, and how to trust it. */
export const trustCommands: CommandGroup = ({ context, proxy, output }) => [
  {
    id: 'cachingProxy.trustCertificate',
    run: async () => {
      const caDir = proxy.settings?.config.https.caDir ?? proxy.caDir;
      const certPath = path.join(caDir, CA_FILE);
      try {
        if (!existsSync(certPath)) await makeCa(context.asAbsolutePath(path.join('dist', 'cli.js')), caDir);
        const cert = new X509Certificate(readFileSync(certPath));
        await vscode.env.clipboard.writeText(certPath);
        output.log('info', `local CA: ${certPath} (SHA-256 ${cert.fingerprint256})`);
        void output
          .notify(
            'info',
            `Caching Proxy's local CA: ${certPath} (path copied). SHA-256 ${cert.fingerprint256}, valid until ${new Date(cert.validTo).toDateString()}.`,
            'How to Trust…',
            'Copy Fingerprint',
            'Reveal File',
          )
          .then(async (choice) => {
            if (choice === 'Copy Fingerprint') await vscode.env.clipboard.writeText(cert.fingerprint256);
            if (choice === 'Reveal File') await vscode.commands.executeCommand('revealFileInOS', vscode.Uri.file(certPath));
            if (choice === 'How to Trust…') {
              const doc = await vscode.workspace.openTextDocument({ language: 'markdown', content: howToTrust(certPath, cert.fingerprint256, cert.validTo, caDir) });
              await vscode.window.showTextDocument(doc);
            }
          });
      } catch (err) {
        const message = `Caching Proxy: cannot read or make the local CA in ${caDir}: ${(err as Error).message}`;
        output.log('error', message);
        void output.notify('error', message);
      }
    },
  },
];
