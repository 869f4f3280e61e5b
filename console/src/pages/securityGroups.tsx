import { ErrorNote, Field, Loading, SelectField, unplacedError, useConfirm } from '../components';
import { useMutation, useQuery, useSubscription } from '../live';
import { can, useSession } from '../session';

interface RuleView {
  id: string;
  direction: string;
  protocol: string;
  portMin: number | null;
  portMax: number | null;
  remoteCidr: string;
  remoteGroupId: string | null;
}
interface GroupView {
  id: string;
  name: string;
  projectId: string;
  rules: RuleView[];
}

const ports = (r: RuleView) => (r.portMin == null ? 'any' : r.portMax == null || r.portMax === r.portMin ? String(r.portMin) : `${r.portMin}–${r.portMax}`);

/** One group's new rule; the API's zod issues come back next to their fields. */
function AddRule({ group, onAdded }: { group: GroupView; onAdded: () => void }) {
  const add = useMutation();
  const form = `rule-${group.id.slice(0, 8)}`;
  const submit = async (e: Event) => {
    e.preventDefault();
    const el = e.currentTarget as HTMLFormElement;
    const data = new FormData(el);
    const num = (k: string) => (data.get(k) ? Number(data.get(k)) : undefined);
    const input = {
      securityGroupId: group.id,
      direction: String(data.get('direction')),
      protocol: String(data.get('protocol')),
      portMin: num('portMin'),
      portMax: num('portMax'),
      remoteCidr: String(data.get('remoteCidr') ?? ''),
    };
    if (await add.run('mutation AddSecurityGroupRule($i: AddSecurityGroupRuleInput!) { addSecurityGroupRule(input: $i) { securityGroup { id } } }', { i: input })) {
      el.reset();
      onAdded();
    }
  };
  return (
    <form onSubmit={submit} noValidate aria-label={`New rule for ${group.name}`} class="rule-form">
      <div class="form-grid">
        <div>
          <SelectField form={form} name="direction" label="Direction" error={add.error} options={[{ value: 'INGRESS', label: 'ingress' }, { value: 'EGRESS', label: 'egress' }]} />
        </div>
        <div>
          <SelectField form={form} name="protocol" label="Protocol" error={add.error} options={['TCP', 'UDP', 'ICMP', 'ANY'].map((p) => ({ value: p, label: p }))} />
        </div>
        <div>
          <Field form={form} name="portMin" label="From port" error={add.error} type="number" inputMode="numeric" />
        </div>
        <div>
          <Field form={form} name="portMax" label="To port" error={add.error} type="number" inputMode="numeric" />
        </div>
        <div>
          <Field form={form} name="remoteCidr" label="Remote CIDR" error={add.error} defaultValue="0.0.0.0/0" />
        </div>
      </div>
      <ErrorNote error={unplacedError(add.error, ['direction', 'protocol', 'portMin', 'portMax', 'remoteCidr'])} />
      <div class="actions">
        <button type="submit" class="primary" disabled={add.busy}>
          Add rule
        </button>
      </div>
    </form>
  );
}

/** Security groups: each group's rules, added and removed; the push to the hosts is an operation. */
export function SecurityGroupsPage() {
  const session = useSession();
  const groups = useQuery<{ securityGroups: GroupView[] }>('query SecurityGroups { securityGroups { id name projectId rules { id direction protocol portMin portMax remoteCidr remoteGroupId } } }');
  useSubscription('subscription SecurityGroupsLive { resourceChanged(kinds: [SECURITY_GROUP]) { kind id } }', {}, () => groups.reload());
  const act = useMutation();
  const { ask, dialog } = useConfirm();
  const writer = can(session, 'addSecurityGroupRule');
  const removeRule = async (r: RuleView) => {
    if (await act.run('mutation RemoveSecurityGroupRule($id: ID!) { removeSecurityGroupRule(input: {id: $id}) { securityGroup { id } } }', { id: r.id })) groups.reload();
  };
  const create = useMutation();
  const createGroup = async (e: Event) => {
    e.preventDefault();
    const form = e.currentTarget as HTMLFormElement;
    if (await create.run('mutation CreateSecurityGroup($name: String!) { createSecurityGroup(input: {name: $name}) { securityGroup { id } } }', { name: String(new FormData(form).get('name') ?? '') })) {
      form.reset();
      groups.reload();
    }
  };
  const nameOf = (id: string) => groups.data?.securityGroups.find((g) => g.id === id)?.name ?? id.slice(0, 8);
  return (
    <section aria-labelledby="groups-title">
      <h1 id="groups-title">Security groups</h1>
      <ErrorNote error={groups.error ?? act.error} />
      {!groups.data ? (
        <Loading />
      ) : (
        <ul class="cards cards-wide">
          {groups.data.securityGroups.map((g) => (
            <li class="card" key={g.id} aria-labelledby={`group-${g.id}`}>
              <header class="card-head">
                <h2 id={`group-${g.id}`}>{g.name}</h2>
                <span class="muted">
                  {g.rules.length} rule{g.rules.length === 1 ? '' : 's'}
                </span>
              </header>
              <div class="table-wrap">
                <table class="compact" aria-label={`Rules of ${g.name}`}>
                  <thead>
                    <tr>
                      <th scope="col">Direction</th>
                      <th scope="col">Protocol</th>
                      <th scope="col">Ports</th>
                      <th scope="col">Remote</th>
                      <th scope="col">
                        <span class="visually-hidden">Actions</span>
                      </th>
                    </tr>
                  </thead>
                  <tbody>
                    {g.rules.length === 0 && (
                      <tr>
                        <td colSpan={5} class="muted">
                          No rules: nothing is let in.
                        </td>
                      </tr>
                    )}
                    {g.rules.map((r) => (
                      <tr key={r.id} data-rule-id={r.id}>
                        <td>{r.direction.toLowerCase()}</td>
                        <td>{r.protocol}</td>
                        <td>{ports(r)}</td>
                        <td class="mono">{r.remoteGroupId ? `group ${nameOf(r.remoteGroupId)}` : r.remoteCidr}</td>
                        <td>
                          {writer && (
                            <button
                              type="button"
                              class="danger-text"
                              aria-label={`Remove ${r.direction.toLowerCase()} ${r.protocol} ${ports(r)} from ${g.name}`}
                              onClick={() => ask('Remove rule from', g.name, `${r.direction.toLowerCase()} ${r.protocol} ports ${ports(r)} from ${r.remoteCidr} is no longer allowed.`, () => void removeRule(r))}
                            >
                              Remove
                            </button>
                          )}
                        </td>
                      </tr>
                    ))}
                  </tbody>
                </table>
              </div>
              {writer && <AddRule group={g} onAdded={groups.reload} />}
            </li>
          ))}
        </ul>
      )}
      {can(session, 'createSecurityGroup') && (
        <form onSubmit={createGroup} noValidate aria-labelledby="new-group-title" class="panel-form">
          <h2 id="new-group-title">New security group</h2>
          <Field form="group" name="name" label="Name" error={create.error} placeholder="web" />
          <ErrorNote error={unplacedError(create.error, ['name'])} />
          <div class="actions">
            <button type="submit" class="primary" disabled={create.busy}>
              Create group
            </button>
          </div>
        </form>
      )}
      {dialog}
    </section>
  );
}
