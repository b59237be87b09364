// The operator console in headless Chromium (Debian's, through playwright-core): log in, find
// the timed-out approval and its network cancel, acknowledge an alert, retry a dead-lettered
// remittance and see it complete; upstream health with its charts (refreshed live by htmx), the
// network-cancel queue, the ledger audit. Screenshots go to ARTIFACTS; any console error, page error
// or failed request fails the run. Started by crates/cli/tests/api/console_browser.rs, which
// prepares the data and passes it in the environment.
import { chromium } from 'playwright-core';

const { BASE, TOKEN, TIMED_OUT, ALERT, REMITTANCE, ARTIFACTS } = process.env;
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';

const browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
const problems = [];
page.on('console', (m) => { if (m.type() === 'error') problems.push(`console error: ${m.text()}`); });
page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
page.on('requestfailed', (r) => problems.push(`request failed: ${r.url()} ${r.failure()?.errorText}`));

const shot = (name) => page.screenshot({ path: `${ARTIFACTS}/${name}.png`, fullPage: true });
const check = (ok, what) => { if (!ok) throw new Error(what); };

try {
  // Logged out: the console sends us to its login page.
  await page.goto(`${BASE}/console/approvals`);
  check(page.url().endsWith('/console/login'), `the login page, not ${page.url()}`);
  await page.fill('#token', 'not-the-token');
  await page.click('button[type=submit]');
  check((await page.textContent('.problem')).includes('not the admin token'), 'a wrong token is refused');
  // The refused login answered 401, which the browser reports; that one was asked for.
  problems.length = 0;
  await page.fill('#token', TOKEN);
  await page.click('button[type=submit]');
  await page.waitForURL('**/console/approvals');
  await shot('01-approvals');

  // The timed-out approval, found with the filter, and its timeline.
  await page.selectOption('select[name=status]', 'timeout');
  await page.click('form.filters button');
  await page.waitForURL('**/console/approvals?status=timeout*');
  await page.click(`a[href="/console/approvals/${TIMED_OUT}"]`);
  await page.waitForSelector('#timeline .step-cancel_acknowledged');
  check((await page.textContent('#status')).trim() === 'timeout', 'the approval timed out');
  check((await page.textContent('#cancel')).trim() === 'acknowledged', 'its network cancel was acknowledged');
  await shot('02-timeline');

  // An alert, acknowledged from the page.
  await page.goto(`${BASE}/console/alerts`);
  await page.click(`#alert-${ALERT} button`);
  await page.waitForURL('**/console/alerts');
  check((await page.$(`#alert-${ALERT} button`)) === null, 'the alert is acknowledged');
  await shot('03-alert-acknowledged');

  // The dead-lettered remittance, retried; the page shows it resolved once it completes.
  await page.goto(`${BASE}/console/dead-letters`);
  await page.click(`form[action="/console/remittances/${REMITTANCE}/retry"] button`);
  await page.waitForURL('**/console/dead-letters?retried=*');
  const status = async () => (await page.textContent(`#remittance-${REMITTANCE} .status`))?.trim();
  for (let i = 0; i < 60 && (await status()) !== 'completed'; i++) {
    await page.waitForTimeout(500);
    await page.reload();
  }
  check((await status()) === 'completed', `the retried remittance completed (it is ${await status()})`);
  check((await page.$(`form[action="/console/remittances/${REMITTANCE}/retry"]`)) === null, 'no retry left to make');
  await shot('04-remittance-retried');

  // Upstream health: the breakers, the last hour charted inline, refreshed by htmx.
  await page.goto(`${BASE}/console/upstreams`);
  check((await page.textContent('#upstream-vana .breaker')).trim() === 'closed', 'vana\'s breaker is closed');
  const drawn = await page.$$eval('figure.chart svg path.series', (ps) => ps.filter((p) => p.getAttribute('d')).length);
  check(drawn >= 2, `the latency and error charts draw lines (${drawn} drawn)`);
  const refreshed = page.waitForRequest((r) => r.url().endsWith('/console/upstreams') && r.headers()['hx-request'] === 'true', { timeout: 8000 });
  await refreshed;
  await page.waitForLoadState('networkidle');
  check((await page.$$('figure.chart svg')).length === 2, 'both charts are still there after the refresh');
  await shot('05-upstreams');

  // The network-cancel queue: the timed-out sale's cancel was acknowledged, nothing waits.
  await page.goto(`${BASE}/console/cancels`);
  check((await page.textContent('#cancels')).includes('No network cancel is waiting'), 'the queue is empty');
  await shot('06-network-cancels');

  // The ledger audit over everything the scenario did.
  await page.goto(`${BASE}/console/ledger`);
  check((await page.getAttribute('#verdict', 'class')) === 'verdict-ok', 'every invariant holds');
  await shot('07-ledger-audit');

  check(problems.length === 0, `the pages reported problems:\n${problems.join('\n')}`);
  console.log('console browser test: ok');
} catch (e) {
  await shot('failure').catch(() => {});
  console.error(e.stack || String(e));
  process.exitCode = 1;
} finally {
  await browser.close();
}
