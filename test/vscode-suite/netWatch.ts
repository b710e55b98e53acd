// Detects network use by the extension host process: (1) patches the Node APIs that open connections or
// resolve names in this thread, (2) reads the process's socket inodes from /proc/self/fd and looks them up in
// /proc/net/{tcp,tcp6,udp,udp6}, which also sees sockets opened from worker threads (the engine's) or native
// code, where the patches cannot reach.
// `import x = require()`: the patches below must replace the modules' own functions, not a bundler's copy of them.
import fs = require('fs');
import net = require('net');
import dns = require('dns');
import dgram = require('dgram');
import http = require('http');
import https = require('https');
import tls = require('tls');

export interface NetCall {
  what: string;
  ours: boolean;
  stack: string;
}

function socketInodes(): Set<string> {
  const out = new Set<string>();
  for (const fd of fs.readdirSync('/proc/self/fd')) {
    try {
      const m = /^socket:\[(\d+)\]$/.exec(fs.readlinkSync(`/proc/self/fd/${fd}`));
      if (m) out.add(m[1]);
    } catch {
      /* fd closed meanwhile */
    }
  }
  return out;
}

/** inode -> "proto local -> remote state" for every inet socket of the network namespace. */
function inetTable(): Map<string, string> {
  const table = new Map<string, string>();
  for (const proto of ['tcp', 'tcp6', 'udp', 'udp6']) {
    let text;
    try {
      text = fs.readFileSync(`/proc/net/${proto}`, 'utf8');
    } catch {
      continue;
    }
    for (const line of text.split('\n').slice(1)) {
      const f = line.trim().split(/\s+/);
      if (f.length > 9) table.set(f[9], `${proto} ${f[1]} -> ${f[2]} st=${f[3]}`);
    }
  }
  return table;
}

/** Inet sockets this process holds now (unix sockets and pipes are not network). */
export function processInetSockets(): Map<string, string> {
  const table = inetTable();
  const out = new Map<string, string>();
  for (const ino of socketInodes()) if (table.has(ino)) out.set(ino, table.get(ino)!);
  return out;
}

/** ownPath: calls whose stack passes through this folder are attributed to the extension. */
export function start(ownPath: string) {
  const calls: NetCall[] = [];
  const restores: (() => void)[] = [];
  const patch = (obj: any, name: string, label: string) => {
    const orig = obj[name];
    if (typeof orig !== 'function') return;
    obj[name] = function (this: unknown, ...args: unknown[]) {
      const stack = new Error().stack || '';
      calls.push({
        what: `${label} ${safeArg(args[0])}`,
        ours: stack.includes(ownPath),
        stack: stack.split('\n').slice(2, 8).join('\n'),
      });
      return orig.apply(this, args);
    };
    restores.push(() => {
      obj[name] = orig;
    });
  };
  patch(net.Socket.prototype, 'connect', 'net.Socket.connect');
  patch(dns, 'lookup', 'dns.lookup');
  patch(dns, 'resolve', 'dns.resolve');
  patch(dgram, 'createSocket', 'dgram.createSocket');
  patch(http, 'request', 'http.request');
  patch(https, 'request', 'https.request');
  patch(tls, 'connect', 'tls.connect');
  if (typeof globalThis.fetch === 'function') patch(globalThis, 'fetch', 'fetch');

  const baseline = processInetSockets();
  const seen = new Map<string, string>();
  const poll = () => {
    for (const [ino, desc] of processInetSockets()) if (!baseline.has(ino)) seen.set(ino, desc);
  };
  const timer = setInterval(poll, 5);
  return {
    stop() {
      clearInterval(timer);
      poll();
      for (const r of restores) r();
      return { calls, newSockets: [...seen.values()], baselineCount: baseline.size };
    },
  };
}

function safeArg(a: unknown): string {
  try {
    return typeof a === 'object' ? JSON.stringify(a).slice(0, 120) : String(a).slice(0, 120);
  } catch {
    return '?';
  }
}
