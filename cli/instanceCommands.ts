import type { Command } from 'commander';
import { ApiError, connect, type ApiClient } from './apiClient.js';
import { startAndFollow, waitOptions, type WaitOptions } from './operationOutput.js';
import { printRows, renderFields } from './tables.js';

const INSTANCE_FIELDS = `id name projectId state task errorReason createdAt launchedAt version
  flavor { id name } image { id name } host { id name }`;

interface InstanceView {
  id: string;
  name: string;
  projectId: string;
  state: string;
  task: string | null;
  errorReason: string | null;
  createdAt: string;
  launchedAt: string | null;
  version: number;
  flavor: { id: string; name: string };
  image: { id: string; name: string };
  host: { id: string; name: string } | null;
}

const isUuid = (s: string) => /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(s);

/** An instance named by id or by name (Incus's habit); a name two instances share must be an id instead. */
async function instanceIdOf(client: ApiClient, ref: string): Promise<string> {
  if (isUuid(ref)) return ref;
  const { instances } = await client.request<{ instances: { edges: { node: { id: string } }[] } }>(
    `query($name: String!) { instances(first: 2, filter: { name: $name }) { edges { node { id } } } }`,
    { name: ref },
  );
  const [only, another] = instances.edges;
  if (!only) throw new ApiError(`instance ${ref} not found (NOT_FOUND)`, 'NOT_FOUND');
  if (another) throw new ApiError(`more than one instance is named ${ref}: name it by id`, 'BAD_USER_INPUT');
  return only.node.id;
}

async function readInstance(client: ApiClient, id: string): Promise<InstanceView | null> {
  const { instance } = await client.request<{ instance: InstanceView | null }>(`query($id: ID!) { instance(id: $id) { ${INSTANCE_FIELDS} } }`, { id });
  return instance;
}

const showInstance = (i: InstanceView) =>
  renderFields([
    ['id', i.id],
    ['name', i.name],
    ['state', i.state],
    ['task', i.task],
    ['flavor', i.flavor.name],
    ['image', i.image.name],
    ['host', i.host?.name],
    ['project', i.projectId],
    ['created', i.createdAt],
    ['launched', i.launchedAt],
    ['error', i.errorReason],
  ]);

/** A catalog entry named by id or name. */
async function catalogIdOf(client: ApiClient, what: 'flavors' | 'images', ref: string): Promise<string> {
  const data = await client.request<Record<string, { id: string; name: string }[]>>(`{ ${what} { id name } }`);
  const found = data[what]!.filter((e) => e.id === ref || e.name === ref);
  const noun = what.slice(0, -1);
  if (found.length === 0) throw new ApiError(`${noun} ${ref} not found (NOT_FOUND): \`stratus ${noun} list\` shows them`, 'NOT_FOUND');
  if (found.length > 1) throw new ApiError(`more than one ${noun} is named ${ref}: name it by id`, 'BAD_USER_INPUT');
  return found[0]!.id;
}

/** What a finished instance action shows: the instance as it is now (gone after a delete). */
const afterAction = (client: ApiClient, id: string) => async () => {
  const instance = await readInstance(client, id);
  return { json: { instance }, text: instance ? showInstance(instance) : `instance ${id} deleted` };
};

const ACTIONS: Array<{ verb: string; mutation: string; about: string }> = [
  { verb: 'start', mutation: 'startInstance', about: 'start a STOPPED instance' },
  { verb: 'stop', mutation: 'stopInstance', about: 'stop a RUNNING instance' },
  { verb: 'pause', mutation: 'pauseInstance', about: 'pause a RUNNING instance (its vCPUs stop, memory stays)' },
  { verb: 'unpause', mutation: 'unpauseInstance', about: 'unpause a PAUSED instance' },
  { verb: 'suspend', mutation: 'suspendInstance', about: 'suspend a RUNNING instance' },
  { verb: 'resume', mutation: 'resumeInstance', about: 'resume a SUSPENDED instance' },
  { verb: 'delete', mutation: 'deleteInstance', about: 'delete an instance and release what it holds' },
];

/** `stratus instance list|show|boot|start|stop|reboot|pause|unpause|suspend|resume|snapshot|delete`. */
export function register(program: Command) {
  const instance = program.command('instance').description('instances: list, show, boot and act on them');

  instance
    .command('list')
    .description('the instances the token may see')
    .option('--state <state>', 'only instances in this state (RUNNING, STOPPED, ERROR, ...)')
    .option('--json', 'print JSON for scripts')
    .action(async (options: { state?: string; json?: boolean }) => {
      const client = await connect();
      const { instances } = await client.request<{ instances: { edges: { node: InstanceView }[] } }>(
        `query($filter: InstanceFilter) { instances(first: 500, filter: $filter) { edges { node { ${INSTANCE_FIELDS} } } } }`,
        { filter: options.state ? { state: options.state.toUpperCase() } : null },
      );
      printRows(
        instances.edges.map((e) => e.node),
        [
          { header: 'ID', cell: (i) => i.id },
          { header: 'NAME', cell: (i) => i.name },
          { header: 'STATE', cell: (i) => i.state },
          { header: 'TASK', cell: (i) => i.task },
          { header: 'FLAVOR', cell: (i) => i.flavor.name },
          { header: 'IMAGE', cell: (i) => i.image.name },
          { header: 'HOST', cell: (i) => i.host?.name },
        ],
        options,
      );
    });

  instance
    .command('show <instance>')
    .description('one instance, by id or name')
    .option('--json', 'print JSON for scripts')
    .action(async (ref: string, options: { json?: boolean }) => {
      const client = await connect();
      const found = await readInstance(client, await instanceIdOf(client, ref));
      if (!found) throw new ApiError(`instance ${ref} not found (NOT_FOUND)`, 'NOT_FOUND');
      console.log(options.json ? JSON.stringify(found, null, 2) : showInstance(found));
    });

  waitOptions(
    instance
      .command('boot <name>')
      .description('boot a new instance and wait until it runs')
      .requiredOption('--flavor <flavor>', 'flavor id or name (`stratus flavor list`)')
      .requiredOption('--image <image>', 'image id or name (`stratus image list`)')
      .option('--network <id>', 'the network for its fixed address')
      .option('--client-request-id <id>', 'repeat-safe: the same id returns the first operation'),
  ).action(async (name: string, options: WaitOptions & { flavor: string; image: string; network?: string; clientRequestId?: string }) => {
    const client = await connect();
    const input = {
      name,
      flavorId: await catalogIdOf(client, 'flavors', options.flavor),
      imageId: await catalogIdOf(client, 'images', options.image),
      ...(options.network ? { networkId: options.network } : {}),
      ...(options.clientRequestId ? { clientRequestId: options.clientRequestId } : {}),
    };
    await startAndFollow(client, { name: 'bootInstance', inputType: 'BootInstanceInput', input }, options, (op) => afterAction(client, op.resourceId)());
  });

  waitOptions(instance.command('reboot <instance>').description('reboot a RUNNING instance').option('--hard', 'reset instead of asking the guest')).action(
    async (ref: string, options: WaitOptions & { hard?: boolean }) => {
      const client = await connect();
      const id = await instanceIdOf(client, ref);
      await startAndFollow(client, { name: 'rebootInstance', inputType: 'RebootInstanceInput', input: { id, hard: options.hard ?? false } }, options, afterAction(client, id));
    },
  );

  waitOptions(
    instance
      .command('snapshot <instance>')
      .description('turn the instance\'s disk into a new PRIVATE image of its project, and wait until it is ACTIVE')
      .requiredOption('--image-name <name>', 'the new image\'s name'),
  ).action(async (ref: string, options: WaitOptions & { imageName: string }) => {
    const client = await connect();
    const id = await instanceIdOf(client, ref);
    await startAndFollow(
      client,
      { name: 'snapshotInstance', inputType: 'SnapshotInstanceInput', input: { id, imageName: options.imageName }, select: 'image { id }' },
      options,
      async (_op, payload) => {
        const imageId = (payload.image as { id: string }).id;
        type ImageView = { id: string; name: string; status: string; checksum: string | null; sizeBytes: number };
        // The operation is over; the image's own row may land a moment later (its projection is another one).
        let image: ImageView | null = null;
        for (let tries = 0; tries < 50; tries++) {
          ({ image } = await client.request<{ image: ImageView | null }>(`query($id: ID!) { image(id: $id) { id name status checksum sizeBytes } }`, { id: imageId }));
          if (image && image.status !== 'QUEUED' && image.status !== 'SAVING') break;
          await new Promise((r) => setTimeout(r, 200));
        }
        return {
          json: { image },
          text: renderFields([['image', image?.id], ['name', image?.name], ['status', image?.status], ['checksum', image?.checksum], ['size', image ? String(image.sizeBytes) : null]]),
        };
      },
    );
  });

  for (const action of ACTIONS) {
    waitOptions(instance.command(`${action.verb} <instance>`).description(action.about)).action(async (ref: string, options: WaitOptions) => {
      const client = await connect();
      const id = await instanceIdOf(client, ref);
      await startAndFollow(client, { name: action.mutation, inputType: 'InstanceActionInput', input: { id } }, options, afterAction(client, id));
    });
  }
}
