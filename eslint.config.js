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
    // Type-aware rules: the TypeScript program of each file (tsconfig.json; test/tsconfig.json for the tests).
    files: ['src/**/*.ts', 'plugins/**/*.ts', 'routes/**/*.ts', 'test/**/*.ts'],
    languageOptions: { parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname } },
    rules: {
      // No promise without an owner: awaited, returned, or handed to logFailure/ignore(why) (src/ignore.ts).
      '@typescript-eslint/no-floating-promises': ['error', {
        // node:test runs what test()/describe() return itself.
        allowForKnownSafeCalls: [{ from: 'package', package: 'node:test', name: ['test', 'describe', 'it', 'suite', 'only', 'skip', 'todo'] }]
      }],
      '@typescript-eslint/no-misused-promises': 'error',
      '@typescript-eslint/no-unnecessary-type-assertion': 'error',
      '@typescript-eslint/consistent-type-imports': ['error', { fixStyle: 'inline-type-imports' }],
      '@typescript-eslint/switch-exhaustiveness-check': ['error', { considerDefaultExhaustiveForUnions: true }]
    }
  },
  {
    files: ['**/*.ts', '**/*.js', '**/*.mjs'],
    rules: {
      // A swallowed rejection hides failures: log it, or say in a comment why it does not matter.
      'no-restricted-syntax': ['error', {
        selector: "CallExpression[callee.property.name='catch'] > ArrowFunctionExpression.arguments:first-child[body.type='BlockStatement'][body.body.length=0]",
        message: 'Do not swallow a rejection with .catch(() => {}): log it, or use a named handler that says why it is safe to ignore.'
      }, {
        selector: 'CatchClause > BlockStatement.body[body.length=0]',
        message: 'Do not swallow an error with an empty catch {}: handle it, log it (logFailure), or pass it to ignore(why) from src/ignore.ts.'
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
