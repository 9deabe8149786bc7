// tools/add.mjs — one definition per module (or an array, or a function).
import { Type } from '@sinclair/typebox'

export default {
  name: 'add',
  description: 'Adds two numbers',
  inputSchema: Type.Object({ a: Type.Number(), b: Type.Number() }),
  handler: ({ a, b }) => ({ content: [{ type: 'text', text: String(a + b) }] })
}
