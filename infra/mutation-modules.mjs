/**
 * The modules under mutation testing (`npm run test:mutation`), each with the unit tests beside it
 * that must notice a change to its rules. A module's mutants are run against its own tests only: the
 * score says how well those tests pin the module down, and each mutant costs one short process.
 */
export const MUTATION_MODULES = {
  'http/range': { mutate: ['libs/http/src/range.ts'], tests: ['libs/http/src/range.test.ts'] },
  'http/content-disposition': {
    mutate: ['libs/http/src/content-disposition.ts', 'libs/http/src/content-disposition-fallback.ts'],
    tests: ['libs/http/src/content-disposition.test.ts', 'libs/http/src/content-disposition-fallback.test.ts'],
  },
  'storage/filenames': { mutate: ['libs/storage/src/filenames.ts'], tests: ['libs/storage/src/filenames.test.ts'] },
  'ftp/paths': { mutate: ['services/ftp/src/paths.ts'], tests: ['services/ftp/src/paths.test.ts'] },
  'federation/signing+invite': {
    mutate: ['libs/federation/src/signing.ts', 'libs/federation/src/invite.ts'],
    tests: ['libs/federation/src/signing.test.ts', 'libs/federation/src/invite.test.ts'],
  },
  'search/index': { mutate: ['libs/search/src/index.ts'], tests: ['libs/search/src/index.test.ts'] },
  'config/env': { mutate: ['libs/config/src/env.ts'], tests: ['libs/config/src/env.test.ts'] },
  'gateway/relay-count': { mutate: ['services/gateway/src/relay-count.ts'], tests: ['services/gateway/src/relay-count.test.ts'] },
};
