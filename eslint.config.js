import neostandard, { plugins } from 'neostandard'
import globals from 'globals'

export default [
  ...neostandard({ ts: true, ignores: ['dist/**', 'node_modules/**', 'bench/node_modules/**', 'test/artifacts/**', '.cache/**', 'results/**'] }),
  {
    files: ['**/*.ts'],
    plugins: { '@typescript-eslint': plugins['typescript-eslint'].plugin },
    rules: {
      '@typescript-eslint/no-explicit-any': 'error'
    }
  },
  {
    // The /docs page's browser script (inlined by src/docs-page.ts): a classic script in the browser.
    files: ['docs/page/**/*.js'],
    languageOptions: { sourceType: 'script', globals: { ...globals.browser } }
  }
]
