/**
 * NO_PROXY matching as curl and most tools read it: comma-separated entries, each a host name
 * (matching itself and its subdomains; a leading dot or "*." means the same), an IP address,
 * an optional ":port", or "*" for everything. Case-insensitive.
 */
export class NoProxyList {
  private readonly all: boolean;
  private readonly entries: { host: string; port: string | null }[];

  constructor(list: string[]) {
    this.all = list.some((s) => s.trim() === '*');
    this.entries = list
      .map((s) => s.trim().toLowerCase())
      .filter((s) => s && s !== '*')
      .map((s) => {
        const bracketed = /^\[([^\]]+)\](?::(\d+))?$/.exec(s);
        if (bracketed) return { host: bracketed[1], port: bracketed[2] ?? null };
        const m = /^([^:]+):(\d+)$/.exec(s);
        const host = (m ? m[1] : s).replace(/^\*?\./, '');
        return { host, port: m ? m[2] : null };
      });
  }

  get isEmpty(): boolean {
    return !this.all && this.entries.length === 0;
  }

  /** True when `hostname` (no brackets) on `port` must be reached directly. */
  bypasses(hostname: string, port: string | number): boolean {
    if (this.all) return true;
    const host = hostname.replace(/^\[|\]$/g, '').toLowerCase();
    const p = String(port);
    return this.entries.some((e) => (e.port === null || e.port === p) && (host === e.host || host.endsWith(`.${e.host}`)));
  }
}
