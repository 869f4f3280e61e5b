import type { FunctionComponent } from 'preact';
import { CatalogPage } from './pages/catalog';
import { HostsPage } from './pages/hosts';
import { InstancesPage } from './pages/instances';
import { NetworksPage } from './pages/networks';
import { OperationsPage } from './pages/operations';
import { ProjectsPage } from './pages/projects';
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
  { path: 'operations', label: 'Operations', requires: 'operations', component: OperationsPage },
  { path: 'hosts', label: 'Hosts', requires: 'hosts', adminOnly: true, component: HostsPage },
  { path: 'catalog', label: 'Flavors & images', requires: 'flavors', component: CatalogPage },
  { path: 'projects', label: 'Projects & tokens', requires: 'projects', adminOnly: true, component: ProjectsPage },
];

export const pagesFor = (s: Session): Page[] => pages.filter((p) => s.queries.has(p.requires) && (!p.adminOnly || s.role === 'ADMIN'));
