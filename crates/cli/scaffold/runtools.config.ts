import { defineConfig } from '@runtools/sdk';

// Project-level settings. RunTools reads this file statically (it is never executed), so keep
// values literal: strings, numbers, booleans, arrays and objects.
export default defineConfig({
  // The sandbox template agents use when they do not name one.
  defaultTemplate: 'base',
  dev: {
    // Where `runtools dev` serves the API.
    port: 7070,
  },
});
