import { defineAgent } from '@runtools/sdk';

export default defineAgent({
  slug: 'code-assistant',
  name: 'Code Assistant',
  model: 'claude-sonnet-4-20250514',
  systemPrompt: `You are an expert software engineer...`,
  tools: ['bash', 'read_file', 'edit_file', 'grep', 'glob', 'web_search'],
  template: 'base',
});
