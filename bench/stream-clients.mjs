// S4's receiving side when no C compiler is available (bench/receiver.c is preferred): N lean SSE
// clients on raw TCP sockets, speaking the same line protocol on stdin/stdout as the C receiver:
// prints "ready"; "arm <marker>" → "armed", then "done <unix-time-ns>" once every client has
// received bytes containing the marker; "exit".
import { connect } from 'node:net'
import { createInterface } from 'node:readline'

const port = Number(process.argv[2])
const n = Number(process.argv[3])
const request = `GET /mcp HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nAccept: text/event-stream\r\n\r\n`
const round = { marker: '', got: 0 }
const sockets = []
let open = 0
for (let i = 0; i < n; i++) {
  const s = connect(port, '127.0.0.1', () => s.write(request))
  s.setNoDelay(true)
  let opened = false
  let seen = ''
  s.on('data', (chunk) => {
    if (!opened) { opened = true; if (++open === n) process.stdout.write('ready\n') }
    if (round.marker !== '' && seen !== round.marker && chunk.includes(round.marker)) {
      seen = round.marker
      if (++round.got === n) process.stdout.write(`done ${BigInt(Math.round((performance.timeOrigin + performance.now()) * 1e6))}\n`)
    }
  })
  s.on('error', () => {})
  sockets.push(s)
}
createInterface({ input: process.stdin }).on('line', (line) => {
  if (line.startsWith('arm ')) {
    round.marker = line.slice(4)
    round.got = 0
    process.stdout.write('armed\n')
  } else if (line === 'exit') {
    for (const s of sockets) s.destroy()
    process.exit(0)
  }
})
