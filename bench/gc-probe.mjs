// Preloaded into each target (node --expose-gc --import): on an IPC message "gc" it collects
// garbage twice and answers with the heap in use, for the retained-memory-per-request scenario.
process.on('message', (m) => {
  if (m !== 'gc' || typeof globalThis.gc !== 'function') return
  globalThis.gc()
  globalThis.gc()
  process.send?.({ heapUsed: process.memoryUsage().heapUsed })
})
