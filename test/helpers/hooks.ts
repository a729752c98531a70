import { dropSchemaTemplate } from './db';

/** Mocha root hooks (loaded through .mocharc.json): tidy what the helpers keep for the whole run. */
export const mochaHooks = {
  async afterAll(): Promise<void> {
    await dropSchemaTemplate();
  },
};
