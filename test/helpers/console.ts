import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';

/** The system's Chromium (never a downloaded browser). */
export const CHROMIUM = '/usr/bin/chromium';

export function launchChromium(): Promise<Browser> {
  return chromium.launch({ executablePath: CHROMIUM, args: ['--headless', '--no-sandbox'] });
}

/** A fresh browser context on `baseURL`, signed in to the console through its sign-in form. */
export async function consoleSignIn(browser: Browser, baseURL: string, login: string, password: string): Promise<{ context: BrowserContext; page: Page }> {
  const context = await browser.newContext({ baseURL, viewport: { width: 1280, height: 800 } });
  const page = await context.newPage();
  await page.goto('/console/login');
  await page.fill('input[name=login]', login);
  await page.fill('input[name=password]', password);
  await Promise.all([page.waitForURL((u) => u.pathname === '/console'), page.click('button[type=submit]')]);
  return { context, page };
}
