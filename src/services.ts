import { AccountsService } from './accounts/accounts-service';
import { Authenticator } from './accounts/authenticator';
import { UsersService } from './accounts/users-service';
import { CatalogService } from './catalog/catalog-service';
import type { Deps } from './context';

/** Every service of the application, built once from its dependencies. Transports receive this. */
export interface Services {
  deps: Deps;
  accounts: AccountsService;
  users: UsersService;
  catalog: CatalogService;
  auth: Authenticator;
}

export function createServices(deps: Deps): Services {
  const users = new UsersService(deps);
  return {
    deps,
    accounts: new AccountsService(deps),
    users,
    catalog: new CatalogService(deps),
    auth: new Authenticator(deps, users),
  };
}
