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
    files: ['**/*.ts', '**/*.js', '**/*.mjs'],
    rules: {
      // A swallowed rejection hides failures: log it, or say in a comment why it does not matter.
      'no-restricted-syntax': ['error', {
        selector: "CallExpression[callee.property.name='catch'] > ArrowFunctionExpression.arguments:first-child[body.type='BlockStatement'][body.body.length=0]",
        message: 'Do not swallow a rejection with .catch(() => {}): log it, or use a named handler that says why it is safe to ignore.'
      }],
      '@stylistic/max-len': ['error', { code: 140, ignoreUrls: true, ignoreStrings: true, ignoreTemplateLiterals: true, ignoreRegExpLiterals: true }]
    }
  },
  {
    // The /docs page's browser script (inlined by src/docs-page.ts): a classic script in the browser.
    files: ['docs/page/**/*.js'],
    languageOptions: { sourceType: 'script', globals: { ...globals.browser } }
  }
]
