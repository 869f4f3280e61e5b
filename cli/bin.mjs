#!/usr/bin/env node
// The `stratus` command runs its TypeScript sources through tsx, so there is no build step to forget.
import { register } from 'tsx/esm/api';

register();
await import('./stratus.ts');
