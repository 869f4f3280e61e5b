import type { Command } from 'commander';
import { ApiClient } from './apiClient.js';
import { graphqlEndpoint, saveApiConfig } from './apiConfig.js';

/**
 * `stratus login <url> --token <token>`: checks the pair against the API before keeping it, so a typo
 * is caught here and not at the next command.
 */
export function register(program: Command) {
  program
    .command('login <url>')
    .description('remember the API URL and a token (kept 0600 in $STRATUS_CONFIG or ~/.config/stratus/config.json)')
    .requiredOption('--token <token>', 'a bearer token (the admin token `npm start` printed, or one from createToken)')
    .action(async (url: string, options: { token: string }) => {
      const config = { url: graphqlEndpoint(url), token: options.token };
      // `flavors` needs any valid token (reader), so it tells a bad token from a good one of any role.
      await new ApiClient(config).request('{ flavors { id } }');
      const path = saveApiConfig(config);
      console.log(`logged in to ${config.url} (kept in ${path})`);
    });
}
