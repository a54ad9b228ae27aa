import type Router from '@koa/router';
import { countUsers } from '../accounts/user.service.ts';
import { countPartners } from '../partners/partner.service.ts';
import { countResources } from '../resources/resource.service.ts';
import type { AdminPages } from './console-page.ts';
import { keysOnPage } from './key.pages.ts';

/**
 * `GET /admin`: the last hour on this instance (tokens issued, refused login steps: the counts
 * /metrics keeps, per minute), how many partners, people and APIs there are, and the signing-key
 * timeline as a picture with its table.
 */
export function overviewPage(router: Router, pages: AdminPages): void {
  router.get('/admin', pages.signIn.session, async (ctx) => {
    const [partners, people, apis, keys] = await Promise.all([
      countPartners(pages.db),
      countUsers(pages.db),
      countResources(pages.db),
      keysOnPage(pages),
    ]);
    pages.show(ctx, 'Administration', 'admin/home', { lastHour: pages.lastHour(), partners, people, apis, keys });
  });
}
