// Typings of index.mjs, the ESM entry: the same objects as the CommonJS entry (index.d.ts), as
// named exports, and that entry's whole `module.exports` (the dist-lock factory carrying the API)
// as the default export. Every name exported by index.d.ts is re-exported here;
// __test__/package.test.mjs checks that the two lists match and that each value exists at run time.

import ferrolock from './index.js'

export default ferrolock

// ---- values (functions and classes) ------------------------------------------------------------

export import createClient = ferrolock.createClient
export import Client = ferrolock.Client
export import Lock = ferrolock.Lock
export import LockError = ferrolock.LockError
export import LockNotAcquiredError = ferrolock.LockNotAcquiredError
export import LockLostError = ferrolock.LockLostError
export import InvalidArgumentError = ferrolock.InvalidArgumentError
export import BackendUnavailableError = ferrolock.BackendUnavailableError
export import ClientClosedError = ferrolock.ClientClosedError
export import AbortedError = ferrolock.AbortedError
export import TableNotFoundError = ferrolock.TableNotFoundError

// ---- types -------------------------------------------------------------------------------------

export import AcquireOptions = ferrolock.AcquireOptions
export import AwsCredentials = ferrolock.AwsCredentials
export import Backend = ferrolock.Backend
export import BaseClientOptions = ferrolock.BaseClientOptions
export import Callback = ferrolock.Callback
export import ClientOptions = ferrolock.ClientOptions
export import ClientStats = ferrolock.ClientStats
export import CreateTableOptions = ferrolock.CreateTableOptions
export import CreateTableResult = ferrolock.CreateTableResult
export import DataOptions = ferrolock.DataOptions
export import DeleteTableResult = ferrolock.DeleteTableResult
export import DoneCallback = ferrolock.DoneCallback
export import DynamoClientObject = ferrolock.DynamoClientObject
export import DynamoClientOptions = ferrolock.DynamoClientOptions
export import FileClientOptions = ferrolock.FileClientOptions
export import FileOptions = ferrolock.FileOptions
export import DynamoOptions = ferrolock.DynamoOptions
export import ErrorCode = ferrolock.ErrorCode
export import JsonValue = ferrolock.JsonValue
export import LockErrorOptions = ferrolock.LockErrorOptions
export import LockEventName = ferrolock.LockEventName
export import LockEvents = ferrolock.LockEvents
export import LockInfo = ferrolock.LockInfo
export import LockRecord = ferrolock.LockRecord
export import Logger = ferrolock.Logger
export import MemoryClientOptions = ferrolock.MemoryClientOptions
export import RedisClientObject = ferrolock.RedisClientObject
export import RedisClientOptions = ferrolock.RedisClientOptions
export import RedisOptions = ferrolock.RedisOptions
export import RedisTlsOptions = ferrolock.RedisTlsOptions
export import RedlockClientOptions = ferrolock.RedlockClientOptions
export import RedlockMaster = ferrolock.RedlockMaster
export import ReleaseOptions = ferrolock.ReleaseOptions
export import UsingFunction = ferrolock.UsingFunction
