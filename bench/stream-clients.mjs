// S4's receiving side, run as child processes by run.mjs so the measuring process is not the
// bottleneck: N lean SSE clients on raw TCP sockets (the request line, then bytes in). For each
// round the parent names a marker; every client counts it once, and the time of the last receipt
// is reported on the shared clock (performance.timeOrigin + performance.now()).
import { connect } from 'node:net'

const { port, n } = JSON.parse(process.argv[2])
const request = `GET /mcp HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nAccept: text/event-stream\r\n\r\n`
const round = { marker: '', got: 0 }
let open = 0
const sockets = []
for (let i = 0; i < n; i++) {
  const s = connect(port, '127.0.0.1', () => s.write(request))
  s.setNoDelay(true)
  let opened = false
  let seen = ''
  s.on('data', (chunk) => {
    if (!opened) { opened = true; if (++open === n) process.send({ ready: true }) }
    if (round.marker !== '' && seen !== round.marker && chunk.includes(round.marker)) {
      seen = round.marker
      if (++round.got === n) process.send({ done: performance.timeOrigin + performance.now() })
    }
  })
  s.on('error', () => {})
  sockets.push(s)
}
process.on('message', (m) => {
  if (m.arm !== undefined) { round.marker = m.arm; round.got = 0 }
  if (m.exit) { for (const s of sockets) s.destroy(); process.exit(0) }
})
