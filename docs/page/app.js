(function () {
  'use strict'
  const cfg = JSON.parse(document.getElementById('docs-config').textContent)
  const catalog = JSON.parse(document.getElementById('docs-catalog').textContent)
  const $ = function (id) { return document.getElementById(id) }
  const MAX_EVENTS = 300

  function el (tag, cls, text) {
    const e = document.createElement(tag)
    if (cls) e.className = cls
    if (text !== undefined) e.textContent = text
    return e
  }
  function token () { return $('token').value.trim() }
  function authHeaders (h) {
    const t = token()
    if (t) h.Authorization = 'Bearer ' + t
    return h
  }

  // ---- copy buttons ----
  document.querySelectorAll('.copyable .copy').forEach(function (button) {
    button.addEventListener('click', function () {
      const text = button.parentElement.querySelector('pre').textContent
      const done = function () { button.textContent = 'Copied'; setTimeout(function () { button.textContent = 'Copy' }, 1200) }
      if (navigator.clipboard) navigator.clipboard.writeText(text).then(done, function () { button.textContent = 'Select and copy' })
    })
  })

  // ---- event log ----
  let counts = { welcome: 0, heartbeat: 0, broadcast: 0, message: 0 }
  function showCounts () {
    $('counts').textContent = counts.welcome + ' welcome · ' + counts.heartbeat + ' heartbeats · ' + counts.broadcast + ' broadcasts · ' + counts.message + ' messages'
  }
  function addEvent (kind, name, data, id) {
    if (counts[kind] !== undefined) counts[kind]++
    showCounts()
    const list = $('events')
    const atBottom = list.scrollTop + list.clientHeight >= list.scrollHeight - 4
    const li = el('li', 'ev ev-' + kind)
    li.dataset.event = name
    li.dataset.kind = kind
    li.appendChild(el('time', '', new Date().toLocaleTimeString()))
    li.appendChild(el('span', 'name', name))
    if (id) li.appendChild(el('span', 'muted', '#' + id + ' '))
    li.appendChild(el('span', 'data', data))
    list.appendChild(li)
    while (list.childElementCount > MAX_EVENTS) list.removeChild(list.firstElementChild)
    if (atBottom) list.scrollTop = list.scrollHeight
  }
  function onSseEvent (name, data, id) {
    if (name === 'welcome') addEvent('welcome', name, data, id)
    else if (name === 'message') addEvent('message', name, data, id)
    else if (name === 'shutdown') addEvent('status', name, data, id)
    else addEvent('broadcast', name, data, id)
  }
  $('clear').addEventListener('click', function () {
    $('events').textContent = ''
    counts = { welcome: 0, heartbeat: 0, broadcast: 0, message: 0 }
    showCounts()
  })
  showCounts()

  // ---- SSE over fetch: a small parser for text/event-stream (so the Authorization header can be sent) ----
  async function readSse (body, onEvent, onComment) {
    const reader = body.pipeThrough(new TextDecoderStream()).getReader()
    let buffer = ''
    let ev = { name: '', data: [], id: '' }
    try {
      for (;;) {
        const chunk = await reader.read()
        if (chunk.done) return
        buffer += chunk.value
        let nl
        while ((nl = buffer.indexOf('\n')) !== -1) {
          let line = buffer.slice(0, nl)
          buffer = buffer.slice(nl + 1)
          if (line.endsWith('\r')) line = line.slice(0, -1)
          if (line === '') {
            if (ev.data.length > 0) {
              if (onEvent(ev.name || 'message', ev.data.join('\n'), ev.id) === false) return
            }
            ev = { name: '', data: [], id: '' }
            continue
          }
          if (line[0] === ':') { if (onComment) onComment(line.slice(1).trim()); continue }
          const colon = line.indexOf(':')
          const field = colon === -1 ? line : line.slice(0, colon)
          const value = colon === -1 ? '' : line.slice(colon + 1).replace(/^ /, '')
          if (field === 'event') ev.name = value
          else if (field === 'data') ev.data.push(value)
          else if (field === 'id') ev.id = value
        }
      }
    } finally {
      reader.cancel().catch(function () {})
    }
  }

  // ---- connection to the public stream ----
  let conn = null
  function setStatus (state, text) {
    const s = $('status')
    s.dataset.state = state
    s.textContent = text || state
    $('connect').textContent = state === 'disconnected' || state === 'error' ? 'Connect' : 'Disconnect'
  }
  function openFetch () {
    const controller = new AbortController()
    let lastId = ''
    let attempt = 0
    let stopped = false
    async function run () {
      while (!stopped) {
        setStatus(attempt === 0 ? 'connecting' : 'reconnecting')
        try {
          const headers = authHeaders({ Accept: 'text/event-stream' })
          if (lastId) headers['Last-Event-ID'] = lastId
          const res = await fetch(cfg.mcpPath, { headers, signal: controller.signal, cache: 'no-store' })
          if (!res.ok) {
            const text = await res.text()
            addEvent('error', 'HTTP ' + res.status, text)
            if (res.status !== 503) { stopped = true; setStatus('error', 'error ' + res.status); return }
          } else {
            attempt = 0
            setStatus('connected', 'connected (fetch)')
            await readSse(res.body, function (name, data, id) {
              if (id) lastId = id
              onSseEvent(name, data, id)
            }, function (comment) { addEvent('heartbeat', 'heartbeat', comment || 'ping') })
            if (!stopped) addEvent('status', 'closed', 'the server ended the stream')
          }
        } catch (err) {
          if (stopped) return
          addEvent('error', 'error', String(err && err.message ? err.message : err))
        }
        if (stopped) return
        attempt++
        await new Promise(function (resolve) { setTimeout(resolve, Math.min(1000 * attempt, 10000)) })
      }
    }
    run()
    return { close: function () { stopped = true; controller.abort() } }
  }
  function openEventSource () {
    const es = new EventSource(cfg.mcpPath)
    setStatus('connecting')
    es.onopen = function () { setStatus('connected', 'connected (EventSource)') }
    es.onerror = function () {
      if (es.readyState === EventSource.CLOSED) setStatus('error', 'closed')
      else setStatus('reconnecting')
    }
    const names = ['welcome', 'shutdown', 'message'].concat($('es-events').value.split(',').map(function (s) { return s.trim() }).filter(Boolean))
    const listen = function (name) {
      es.addEventListener(name, function (e) { onSseEvent(name, e.data, e.lastEventId) })
    }
    names.filter(function (n, i) { return names.indexOf(n) === i }).forEach(listen)
    return { close: function () { es.close() } }
  }
  $('connect-form').addEventListener('submit', function (e) {
    e.preventDefault()
    const state = $('status').dataset.state
    if (conn) {
      conn.close()
      conn = null
      // Connected (or trying): the button disconnects. After an error it connects again.
      if (state !== 'error') { setStatus('disconnected'); return }
    }
    const useEventSource = $('transport').value === 'eventsource' && !token()
    if ($('transport').value === 'eventsource' && token()) addEvent('status', 'note', 'EventSource cannot send a token: using fetch')
    conn = useEventSource ? openEventSource() : openFetch()
  })

  // ---- broadcast ----
  $('broadcast-form').addEventListener('submit', async function (e) {
    e.preventDefault()
    const raw = $('bc-data').value
    let data
    try { data = JSON.parse(raw) } catch (err) { data = raw }
    $('bc-status').textContent = 'sending…'
    try {
      const res = await fetch(cfg.broadcastPath, {
        method: 'POST',
        headers: authHeaders({ 'Content-Type': 'application/json' }),
        body: JSON.stringify({ event: $('bc-event').value, data })
      })
      $('bc-status').textContent = 'HTTP ' + res.status
    } catch (err) {
      $('bc-status').textContent = String(err)
    }
  })

  // ---- MCP client: initialize once, then tools/call ----
  if (!$('tool-form')) return
  const session = { id: null, protocolVersion: cfg.protocolVersion, nextId: 1 }

  function HttpError (status, body) { this.status = status; this.message = 'HTTP ' + status + ': ' + body }

  async function post (message) {
    const headers = authHeaders({ 'Content-Type': 'application/json', Accept: 'application/json, text/event-stream' })
    if (session.id) {
      headers['Mcp-Session-Id'] = session.id
      headers['MCP-Protocol-Version'] = session.protocolVersion
    }
    return await fetch(cfg.mcpPath, { method: 'POST', headers, body: JSON.stringify(message) })
  }
  // A request's answer is JSON or an SSE stream carrying notifications and then the response.
  async function request (method, params, onNotification) {
    const id = session.nextId++
    const res = await post({ jsonrpc: '2.0', id, method, params })
    const sid = res.headers.get('Mcp-Session-Id')
    if (sid) session.id = sid
    if (!res.ok) throw new HttpError(res.status, await res.text())
    const type = res.headers.get('Content-Type') || ''
    if (type.indexOf('text/event-stream') === 0) {
      let answer = null
      await readSse(res.body, function (name, data) {
        let msg
        try { msg = JSON.parse(data) } catch (err) { return }
        if (msg.id === id && (msg.result !== undefined || msg.error !== undefined)) { answer = msg; return false }
        if (onNotification) onNotification(msg)
      })
      if (!answer) throw new Error('the stream ended without a response')
      return answer
    }
    return await res.json()
  }
  async function ensureSession () {
    if (session.id) return
    const init = await request('initialize', {
      protocolVersion: cfg.protocolVersion,
      capabilities: {},
      clientInfo: { name: 'docs-console', version: '1.0.0' }
    })
    if (init.error) throw new Error('initialize failed: ' + init.error.message)
    session.protocolVersion = init.result.protocolVersion || cfg.protocolVersion
    await post({ jsonrpc: '2.0', method: 'notifications/initialized' })
    $('session-info').textContent = session.id ? 'session ' + session.id.slice(0, 8) + '…' : 'stateless'
  }

  // ---- the tool form, generated from the input schema ----
  const tools = catalog.tools
  const select = $('tool-select')
  tools.forEach(function (tool, i) {
    const option = el('option', '', tool.title ? tool.name + ' — ' + tool.title : tool.name)
    option.value = String(i)
    select.appendChild(option)
  })
  const preferred = tools.findIndex(function (t) { return t.name === 'current_time' })
  select.value = String(preferred === -1 ? 0 : preferred)

  function kindOf (schema) {
    if (!schema || typeof schema !== 'object') return 'json'
    if (Array.isArray(schema.enum)) return 'enum'
    const type = Array.isArray(schema.type) ? schema.type.filter(function (t) { return t !== 'null' })[0] : schema.type
    if (type === 'string' || type === 'number' || type === 'integer' || type === 'boolean') return type
    return 'json'
  }
  function renderFields () {
    const tool = tools[Number(select.value)]
    $('tool-desc').textContent = tool.description || ''
    const box = $('tool-fields')
    box.textContent = ''
    const schema = tool.inputSchema || {}
    const props = schema.properties || {}
    const required = Array.isArray(schema.required) ? schema.required : []
    const names = Object.keys(props)
    if (names.length === 0) { box.appendChild(el('p', 'muted', 'No arguments.')); return }
    names.forEach(function (name, i) {
      const s = props[name] || {}
      const kind = kindOf(s)
      const field = el('div', 'field')
      const label = el('label', '', name + (required.indexOf(name) !== -1 ? ' *' : ''))
      const inputId = 'arg-' + i
      label.htmlFor = inputId
      field.appendChild(label)
      if (s.description) label.appendChild(el('span', 'hint muted', s.description))
      let input
      if (kind === 'enum') {
        input = document.createElement('select')
        if (required.indexOf(name) === -1) input.appendChild(el('option', '', ''))
        s.enum.forEach(function (v) {
          const o = el('option', '', typeof v === 'string' ? v : JSON.stringify(v))
          o.value = JSON.stringify(v)
          input.appendChild(o)
        })
        if (s.default !== undefined) input.value = JSON.stringify(s.default)
      } else if (kind === 'boolean') {
        input = document.createElement('input')
        input.type = 'checkbox'
        input.checked = s.default === true
      } else if (kind === 'json') {
        input = document.createElement('textarea')
        input.placeholder = 'JSON, e.g. ' + JSON.stringify(s.default !== undefined ? s.default : (s.type === 'array' ? [] : {}))
        if (s.default !== undefined) input.value = JSON.stringify(s.default, null, 2)
      } else {
        input = document.createElement('input')
        input.type = kind === 'string' ? 'text' : 'number'
        if (kind === 'integer') input.step = '1'
        else if (kind === 'number') input.step = 'any'
        if (typeof s.minimum === 'number') input.min = String(s.minimum)
        if (typeof s.maximum === 'number') input.max = String(s.maximum)
        if (s.default !== undefined) input.value = String(s.default)
        const example = Array.isArray(s.examples) && s.examples.length > 0 ? s.examples[0] : undefined
        if (example !== undefined) input.placeholder = String(example)
      }
      input.id = inputId
      input.name = name
      input.dataset.arg = name
      input.dataset.kind = kind
      input.dataset.required = required.indexOf(name) !== -1 ? 'true' : 'false'
      field.appendChild(input)
      box.appendChild(field)
    })
  }
  function collectArgs () {
    const args = {}
    $('tool-fields').querySelectorAll('[data-arg]').forEach(function (input) {
      const name = input.dataset.arg
      const kind = input.dataset.kind
      const required = input.dataset.required === 'true'
      if (kind === 'boolean') { if (input.checked || required) args[name] = input.checked; return }
      const raw = input.value
      if (raw === '' && !required) return
      if (kind === 'enum') { args[name] = JSON.parse(raw); return }
      if (kind === 'number' || kind === 'integer') {
        const n = Number(raw)
        if (raw === '' || Number.isNaN(n)) throw new Error(name + ': enter a number')
        args[name] = n
        return
      }
      if (kind === 'json') {
        try { args[name] = JSON.parse(raw) } catch (err) { throw new Error(name + ': invalid JSON (' + err.message + ')') }
        return
      }
      args[name] = raw
    })
    return args
  }
  select.addEventListener('change', renderFields)
  renderFields()

  function showResult (state, text, json) {
    $('result').dataset.state = state
    $('result-text').textContent = text
    $('result-json').textContent = json === undefined ? '' : JSON.stringify(json, null, 2)
  }
  function describe (result) {
    const parts = (result.content || []).map(function (c) {
      if (c.type === 'text') return c.text
      if (c.type === 'image' || c.type === 'audio') return '[' + c.type + ' ' + (c.mimeType || '') + ']'
      if (c.type === 'resource') return '[resource ' + (c.resource && c.resource.uri) + ']'
      if (c.type === 'resource_link') return '[link ' + c.uri + ']'
      return JSON.stringify(c)
    })
    if (result.structuredContent !== undefined) parts.push(JSON.stringify(result.structuredContent, null, 2))
    return parts.join('\n')
  }
  $('tool-form').addEventListener('submit', async function (e) {
    e.preventDefault()
    const tool = tools[Number(select.value)]
    let args
    try { args = collectArgs() } catch (err) { showResult('error', err.message); return }
    $('call').disabled = true
    const log = []
    showResult('pending', 'calling ' + tool.name + '…')
    const onNotification = function (msg) {
      log.push(msg)
      const p = msg.params || {}
      const line = msg.method === 'notifications/progress'
        ? 'progress ' + p.progress + (p.total !== undefined ? '/' + p.total : '') + (p.message ? ' ' + p.message : '')
        : (msg.method || 'message') + ' ' + JSON.stringify(p.data !== undefined ? p.data : p)
      $('result-text').textContent += '\n' + line
    }
    try {
      let answer
      for (let attempt = 0; attempt < 2; attempt++) {
        try {
          await ensureSession()
          answer = await request('tools/call', { name: tool.name, arguments: args }, onNotification)
          break
        } catch (err) {
          // The session expired or was deleted: start a new one, once.
          if (err instanceof HttpError && err.status === 404 && attempt === 0) { session.id = null; continue }
          throw err
        }
      }
      const notes = log.length > 0 ? '\n\n— ' + log.length + ' notification(s) before the result, see below —' : ''
      const full = log.length > 0 ? { notifications: log, response: answer } : answer
      if (answer.error) showResult('error', 'error ' + answer.error.code + ': ' + answer.error.message + notes, full)
      else showResult(answer.result.isError ? 'error' : 'ok', describe(answer.result) + notes, full)
    } catch (err) {
      showResult('error', String(err && err.message ? err.message : err))
    } finally {
      $('call').disabled = false
    }
  })
})()
