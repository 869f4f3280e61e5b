import type { FunctionComponent } from 'preact';
import { AddressesPage } from './pages/addresses';
import { CatalogPage } from './pages/catalog';
import { HostsPage } from './pages/hosts';
import { ImagesPage } from './pages/images';
import { InstancesPage } from './pages/instances';
import { NetworksPage } from './pages/networks';
import { OperationsPage } from './pages/operations';
import { ProjectsPage } from './pages/projects';
import { SecurityGroupsPage } from './pages/securityGroups';
import { UsagePage } from './pages/usage';
import { VolumesPage } from './pages/volumes';
import type { Session } from './session';

/**
 * The console's pages. A page is shown when the API has its query (`requires`) and the role may use it,
 * so a new resource (volumes, networks, usage) is one component and one line here.
 */
export interface Page {
  path: string;
  label: string;
  requires: string;
  adminOnly?: boolean;
  component: FunctionComponent;
}

export const pages: Page[] = [
  { path: 'instances', label: 'Instances', requires: 'instances', component: InstancesPage },
  { path: 'volumes', label: 'Volumes', requires: 'volumes', component: VolumesPage },
  { path: 'networks', label: 'Networks', requires: 'networks', component: NetworksPage },
  { path: 'addresses', label: 'Addresses', requires: 'addresses', component: AddressesPage },
  { path: 'security-groups', label: 'Security groups', requires: 'securityGroups', component: SecurityGroupsPage },
  { path: 'images', label: 'Images', requires: 'images', component: ImagesPage },
  { path: 'usage', label: 'Usage', requires: 'usage', component: UsagePage },
  { path: 'operations', label: 'Operations', requires: 'operations', component: OperationsPage },
  { path: 'hosts', label: 'Hosts', requires: 'hosts', adminOnly: true, component: HostsPage },
  { path: 'catalog', label: 'Flavors', requires: 'flavors', component: CatalogPage },
  { path: 'projects', label: 'Projects & tokens', requires: 'projects', adminOnly: true, component: ProjectsPage },
];

export const pagesFor = (s: Session): Page[] => pages.filter((p) => s.queries.has(p.requires) && (!p.adminOnly || s.role === 'ADMIN'));
