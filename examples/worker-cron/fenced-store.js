// A tiny key/value store over HTTP that checks fences, as a database or object store downstream
// of a lock should (Kleppmann, "How to do distributed locking"). Per key it remembers the highest
// fence it has seen, on reads and writes alike, and refuses any request that carries a lower one
// (409). So once a newer holder of the lock has touched a key, an older holder (stalled, its lease
// gone) can no longer write it, even if its write arrives late.
'use strict'
const http = require('node:http')

/** Starts the store on a free port of 127.0.0.1; `onWrite(entry)` sees every write, refused or not. */
function serveStore(onWrite) {
  const values = new Map()
  const highest = new Map()
  const server = http.createServer((req, res) => {
    const url = new URL(req.url, 'http://store')
    const key = url.pathname.slice(1)
    const fence = BigInt(url.searchParams.get('fence'))
    const by = url.searchParams.get('by')
    let body = ''
    req.on('data', (chunk) => (body += chunk))
    req.on('end', () => {
      const seen = highest.get(key) ?? -1n
      const ok = fence >= seen
      if (ok) highest.set(key, fence)
      if (req.method === 'PUT') {
        const value = JSON.parse(body)
        if (ok) values.set(key, value)
        onWrite({ key, value, by, fence: String(fence), highest: String(ok ? fence : seen), ok })
      }
      res.statusCode = ok ? 200 : 409
      res.end(JSON.stringify(ok ? (values.get(key) ?? null) : { error: `stale fence ${fence} < ${seen}` }))
    })
  })
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server)))
}

/** The error of a request the store refused: its fence was older than one it had seen. */
class StaleFenceError extends Error {}

/** A client of the store at `url` for one lock holder: every request carries its fence. */
function storeClient(url, by) {
  async function request(method, key, fence, value) {
    const query = `fence=${fence}&by=${encodeURIComponent(by)}`
    const res = await fetch(`${url}/${key}?${query}`, {
      method,
      body: value === undefined ? undefined : JSON.stringify(value),
    })
    const answer = await res.json()
    if (res.status === 409) throw new StaleFenceError(answer.error)
    if (!res.ok) throw new Error(`store: HTTP ${res.status}`)
    return answer
  }
  return {
    read: (key, fence) => request('GET', key, fence),
    write: (key, value, fence) => request('PUT', key, fence, value),
  }
}

module.exports = { serveStore, storeClient, StaleFenceError }
