import type { ConsoleRoutes } from '../app';

/** Sections whose capabilities are built elsewhere: a clear page saying so, never invented data. */
const PLACEHOLDERS: { path: string; title: string; arrives: string }[] = [
  { path: '/events', title: 'Events and deliveries', arrives: 'event delivery' },
  { path: '/notifications', title: 'Notification templates', arrives: 'event delivery' },
];

export function placeholderPages(r: ConsoleRoutes): void {
  for (const p of PLACEHOLDERS) r.get(p.path, (page) => page.render('placeholder.njk', { title: p.title, arrives: p.arrives }));
}
