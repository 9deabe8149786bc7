/**
 * A strict parser for the Prometheus text exposition format 0.0.4
 * (https://prometheus.io/docs/instrumenting/exposition_formats/), for tests: it throws on anything a
 * Prometheus server would reject or misread, and checks the metric-type rules promtool checks
 * (TYPE before samples, one family's samples together, histogram buckets cumulative and ending in
 * +Inf = _count, no duplicate series, counters non-negative).
 */

export type MetricType = 'counter' | 'gauge' | 'histogram' | 'summary' | 'untyped'

export interface Sample {
  name: string
  labels: Record<string, string>
  value: number
}

export interface Family {
  name: string
  type: MetricType
  help?: string
  samples: Sample[]
}

const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/
const TYPES = new Set<string>(['counter', 'gauge', 'histogram', 'summary', 'untyped'])
const FLOAT = /^[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?$/

function parseValue (raw: string, where: string): number {
  // Prometheus reads values with Go's strconv.ParseFloat: NaN and Inf in any letter case
  // (prom-client writes `Nan` for an empty event-loop histogram's mean).
  if (/^nan$/i.test(raw)) return NaN
  if (/^\+?inf(inity)?$/i.test(raw)) return Infinity
  if (/^-inf(inity)?$/i.test(raw)) return -Infinity
  if (!FLOAT.test(raw)) throw new Error(`${where}: bad value ${JSON.stringify(raw)}`)
  return Number(raw)
}

/** Parses `{a="x",b="y\"z"}` starting at `i` (the `{`); returns the labels and the index after `}`. */
function parseLabels (line: string, i: number, where: string): { labels: Record<string, string>, end: number } {
  const labels: Record<string, string> = {}
  i++ // {
  for (;;) {
    if (line[i] === '}') return { labels, end: i + 1 }
    const eq = line.indexOf('=', i)
    if (eq === -1) throw new Error(`${where}: label without '='`)
    const name = line.slice(i, eq)
    if (!LABEL_NAME.test(name)) throw new Error(`${where}: bad label name ${JSON.stringify(name)}`)
    if (name in labels) throw new Error(`${where}: label ${name} repeated`)
    if (line[eq + 1] !== '"') throw new Error(`${where}: label value must be quoted`)
    let value = ''
    let j = eq + 2
    for (;; j++) {
      const c = line[j]
      if (c === undefined) throw new Error(`${where}: unterminated label value`)
      if (c === '"') break
      if (c === '\\') {
        const n = line[++j]
        if (n === '\\') value += '\\'
        else if (n === '"') value += '"'
        else if (n === 'n') value += '\n'
        else throw new Error(`${where}: bad escape \\${n ?? ''} in label value`)
      } else value += c
    }
    labels[name] = value
    i = j + 1
    if (line[i] === ',') i++
    else if (line[i] !== '}') throw new Error(`${where}: expected ',' or '}' after label ${name}`)
  }
}

/** The family a sample name belongs to, given the families declared so far. */
function familyOf (name: string, families: Map<string, Family>): Family | undefined {
  const direct = families.get(name)
  if (direct) return direct
  for (const suffix of ['_bucket', '_sum', '_count']) {
    if (!name.endsWith(suffix)) continue
    const f = families.get(name.slice(0, -suffix.length))
    if (f && (f.type === 'histogram' || (f.type === 'summary' && suffix !== '_bucket'))) return f
  }
  return undefined
}

const seriesKey = (name: string, labels: Record<string, string>): string =>
  name + JSON.stringify(Object.entries(labels).sort(([a], [b]) => a.localeCompare(b)))

export function parsePrometheusText (text: string): Map<string, Family> {
  if (!text.endsWith('\n')) throw new Error('exposition must end with a newline')
  const families = new Map<string, Family>()
  const finished = new Set<string>()
  const series = new Set<string>()
  const typed = new Set<string>()
  let current: Family | undefined

  text.slice(0, -1).split('\n').forEach((line, n) => {
    const where = `line ${n + 1}`
    if (line.trim() === '') return
    if (line.startsWith('#')) {
      const m = /^# (HELP|TYPE) (\S+)(?: (.*))?$/.exec(line)
      if (m === null) return // a plain comment
      const [, kind = '', name = '', rest = ''] = m
      if (!METRIC_NAME.test(name)) throw new Error(`${where}: bad metric name ${JSON.stringify(name)}`)
      if (finished.has(name)) throw new Error(`${where}: ${name} declared again after its samples`)
      let family = families.get(name)
      if (family === undefined) {
        if (current && current.name !== name) finished.add(current.name)
        family = { name, type: 'untyped', samples: [] }
        families.set(name, family)
        current = family
      } else if (family.samples.length > 0) {
        throw new Error(`${where}: ${kind} for ${name} after its samples`)
      }
      if (kind === 'HELP') {
        if (family.help !== undefined) throw new Error(`${where}: second HELP for ${name}`)
        if (/\\(?![\\n])/.test(rest)) throw new Error(`${where}: bad escape in HELP`)
        family.help = rest.replace(/\\n/g, '\n').replace(/\\\\/g, '\\')
      } else {
        if (!TYPES.has(rest)) throw new Error(`${where}: unknown type ${JSON.stringify(rest)}`)
        if (typed.has(name)) throw new Error(`${where}: second TYPE for ${name}`)
        typed.add(name)
        family.type = rest as MetricType
      }
      return
    }

    const nameMatch = /^[a-zA-Z_:][a-zA-Z0-9_:]*/.exec(line)
    if (nameMatch === null) throw new Error(`${where}: bad sample line ${JSON.stringify(line)}`)
    const name = nameMatch[0]
    let i = name.length
    let labels: Record<string, string> = {}
    if (line[i] === '{') ({ labels, end: i } = parseLabels(line, i, where))
    if (line[i] !== ' ') throw new Error(`${where}: expected a space before the value`)
    const parts = line.slice(i + 1).split(' ')
    if (parts.length > 2 || (parts.length === 2 && !/^-?\d+$/.test(parts[1] ?? ''))) throw new Error(`${where}: bad value/timestamp`)
    const value = parseValue(parts[0] ?? '', where)

    let family = familyOf(name, families)
    if (family === undefined) {
      // An untyped sample without TYPE starts its own family.
      if (current) finished.add(current.name)
      family = { name, type: 'untyped', samples: [] }
      families.set(name, family)
    }
    if (family !== current) {
      if (finished.has(family.name)) throw new Error(`${where}: samples of ${family.name} are not together`)
      if (current) finished.add(current.name)
      current = family
    }
    if (family.type === 'histogram' && name === family.name) throw new Error(`${where}: histogram ${name} sample without _bucket/_sum/_count`)
    if (name.endsWith('_bucket') && family.type === 'histogram' && labels.le === undefined) throw new Error(`${where}: bucket without le`)
    if (family.type === 'counter' && !(value >= 0)) throw new Error(`${where}: counter ${name} is ${value}`)
    const key = seriesKey(name, labels)
    if (series.has(key)) throw new Error(`${where}: duplicate series ${key}`)
    series.add(key)
    family.samples.push({ name, labels, value })
  })

  for (const f of families.values()) if (f.type === 'histogram') checkHistogram(f)
  return families
}

function checkHistogram (f: Family): void {
  const groups = new Map<string, { buckets: Array<[number, number]>, sum?: number, count?: number }>()
  for (const s of f.samples) {
    const { le, ...rest } = s.labels
    const key = JSON.stringify(Object.entries(rest).sort(([a], [b]) => a.localeCompare(b)))
    const g = groups.get(key) ?? { buckets: [] }
    groups.set(key, g)
    if (s.name === `${f.name}_bucket`) g.buckets.push([parseValue(le ?? '', f.name), s.value])
    else if (s.name === `${f.name}_sum`) g.sum = s.value
    else if (s.name === `${f.name}_count`) g.count = s.value
  }
  for (const [key, g] of groups) {
    const where = `histogram ${f.name}${key}`
    if (g.sum === undefined || g.count === undefined) throw new Error(`${where}: missing _sum or _count`)
    if (g.buckets.length === 0) throw new Error(`${where}: no buckets`)
    g.buckets.reduce((prev, cur) => {
      if (!(cur[0] > prev[0])) throw new Error(`${where}: le not increasing`)
      if (cur[1] < prev[1]) throw new Error(`${where}: buckets not cumulative`)
      return cur
    })
    const last = g.buckets.at(-1) ?? [0, 0]
    if (last[0] !== Infinity) throw new Error(`${where}: no +Inf bucket`)
    if (last[1] !== g.count) throw new Error(`${where}: +Inf bucket ${last[1]} != _count ${g.count}`)
  }
}

/** The value of the one sample `name` whose labels include `labels`; undefined when there is none. */
export function sampleValue (families: Map<string, Family>, name: string, labels: Record<string, string> = {}): number | undefined {
  for (const f of families.values()) {
    for (const s of f.samples) {
      if (s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v)) return s.value
    }
  }
  return undefined
}
