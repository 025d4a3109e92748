// The fencing store: a downstream resource that accepts a write only when its fence is at least
// the highest fence it has accepted for that name (the usual fencing-token rule). Every write is
// logged with its verdict, for the checker to verify independently.
export class FenceStore {
  #highest = new Map() // name -> highest accepted fence (bigint)
  log = [] // { name, fence, grant, ok, at }

  /** Decides one write; true when accepted. */
  write({ name, fence, grant, at }) {
    const f = BigInt(fence)
    const top = this.#highest.get(name)
    const ok = top === undefined || f >= top
    if (ok) this.#highest.set(name, f)
    this.log.push({ name, fence: f, grant, ok, at })
    return ok
  }
}
