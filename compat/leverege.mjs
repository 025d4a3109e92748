// ESM entry of `ferrolock/leverege`: the same `Lock` as the CommonJS entry, as the default export,
// plus its error and handle classes as named exports (`import { LockError } from 'ferrolock/leverege'`).
import Lock from './leverege.js'

export const { LockError, LockHandle } = Lock
export default Lock
