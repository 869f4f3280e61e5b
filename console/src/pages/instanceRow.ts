import type { InstanceState } from '../../../domain/instanceTransitions';

/** What a row of the instances table shows; the boot dialog asks for the same so its result is a row. */
export interface InstanceRow {
  id: string;
  name: string;
  state: InstanceState;
  task: string | null;
  version: number;
  createdAt: string;
  projectId: string;
  flavor: { name: string };
  host: { name: string } | null;
  addresses: { address: string }[];
}

export const INSTANCE_ROW = 'id name state task version createdAt projectId flavor { name } host { name } addresses { address }';
