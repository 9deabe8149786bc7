// The load generator, run as its own process by run.mjs: autocannon's API with the options given
// as JSON in argv[2]; prints autocannon's result as JSON. Every request gets its own JSON-RPC id
// (the `__ID__` placeholder of the body), since a server may refuse an id still in flight.
import autocannon from 'autocannon'

const { body, ...opts } = JSON.parse(process.argv[2])
let n = 0
const result = await autocannon({
  ...opts,
  requests: [{ setupRequest: (req) => ({ ...req, body: body.replace('"__ID__"', String(++n)) }) }]
})
process.stdout.write(JSON.stringify(result))
