// A node --test reporter for scripts/test.mjs: one JSON line per finished test or suite, with
// what the summary needs (outcome, skip/todo reason, file, nesting, duration). scripts/test.mjs
// passes it beside the spec reporter:
//   --test-reporter=spec --test-reporter-destination=stdout
//   --test-reporter=./scripts/test-reporter.mjs --test-reporter-destination=<file>
export default async function* results(source) {
  for await (const { type, data } of source) {
    if (type !== 'test:pass' && type !== 'test:fail') continue
    yield (
      JSON.stringify({
        ok: type === 'test:pass',
        name: data.name,
        file: data.file ?? null,
        nesting: data.nesting,
        suite: data.details?.type === 'suite',
        skip: data.skip === undefined ? null : String(data.skip),
        todo: data.todo === undefined ? null : String(data.todo),
        ms: data.details?.duration_ms ?? 0,
        error: type === 'test:fail' ? String(data.details?.error?.message ?? data.details?.error ?? '') : null,
      }) + '\n'
    )
  }
}
