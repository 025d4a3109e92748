// Typings of compat/leverege.mjs: `Lock` as the default export, its error and handle classes as
// named exports (the same objects as `Lock.LockError` and `Lock.LockHandle`).
import Lock from './leverege.js'

export default Lock

export import LockError = Lock.LockError
export import LockHandle = Lock.LockHandle
export import LockOptions = Lock.LockOptions
export import RedisClientObject = Lock.RedisClientObject
export import RedisServer = Lock.RedisServer
export import Connection = Lock.Connection
export import Settings = Lock.Settings
export import CreateOptions = Lock.CreateOptions
export import TtlOrOptions = Lock.TtlOrOptions
