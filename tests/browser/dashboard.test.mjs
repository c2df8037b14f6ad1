// Browser tests of the hcpipe dashboard in Debian's headless Chromium, driven by playwright-core
// (no browser download). tests/integration/test_dashboard.sh starts a real hcpipe and runs this
// with:
//   HCPIPE_URL      base URL of the running service
//   DATA_DIR        its data dir (the test repairs the dead job's source object there)
//   DEAD_JOB        id of a job that is dead (its source object cannot be read)
//   GOOD_OBJECT     path of a readable NDJSON file to put in place of the dead job's source
//   DEAD_OBJECT     path of the dead job's source object in the data dir
//   SCREENSHOTS     folder for the screenshots (test artifacts)
// Prints one line per check and a last line "N passed, N failed"; exits 1 on any failure.
import { chromium } from 'playwright-core';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const BASE = process.env.HCPIPE_URL;
const SHOTS = process.env.SCREENSHOTS;
const DEAD_JOB = process.env.DEAD_JOB;
let passed = 0, failed = 0;

function check(name, ok, detail) {
  if (ok) { passed++; console.log(`ok   ${name}`); }
  else { failed++; console.log(`FAIL ${name}${detail !== undefined ? ': ' + detail : ''}`); }
}

async function step(name, fn) {
  try { await fn(); }
  catch (e) { failed++; console.log(`FAIL ${name}: ${e && e.stack ? e.stack.split('\n').slice(0, 3).join(' | ') : e}`); }
}

async function shot(page, name) {
  await page.screenshot({ path: path.join(SHOTS, name + '.png'), fullPage: true });
}

async function api(p) {
  const r = await fetch(BASE + p);
  return r.json();
}

/* Submits a job through the form and waits for its page to show `succeeded`. Returns its id. */
async function submitThroughForm(page, query, asOf) {
  await page.goto(BASE + '/#/submit');
  await page.waitForSelector('#submit-form');
  await page.selectOption('#f-query', query);
  if (asOf) await page.fill('#f-asof', asOf);
  await page.click('#f-submit');
  await page.waitForURL(/#\/jobs\/[0-9a-f-]{36}$/);
  const id = page.url().split('/').pop();
  await page.waitForSelector('#job-facts .state[data-state="succeeded"]', { timeout: 30000 });
  await page.waitForSelector('#result-body table', { timeout: 30000 });
  return id;
}

const userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'hcpipe-chromium-'));
const context = await chromium.launchPersistentContext(userDataDir, {
  executablePath: '/usr/bin/chromium',
  headless: true,
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  viewport: { width: 1280, height: 900 },
});
const page = context.pages()[0] || await context.newPage();
const consoleErrors = [];
page.on('pageerror', (e) => consoleErrors.push(String(e)));
// The one refused submission of the keyboard test (422) is expected; nothing else may fail.
page.on('console', (m) => { if (m.type() === 'error' && !/status of 422/.test(m.text())) consoleErrors.push(m.text()); });
const jobListStatuses = [];
const authHeaders = [];
page.on('response', (r) => {
  if (/\/jobs\?limit=100$/.test(r.url())) jobListStatuses.push(r.status());
});
page.on('request', (r) => {
  if (r.url().startsWith(BASE + '/jobs')) authHeaders.push(r.headers()['authorization'] || null);
});
const offsite = [];
context.on('request', (r) => { if (!r.url().startsWith(BASE) && !r.url().startsWith('data:')) offsite.push(r.url()); });

await step('jobs page', async () => {
  await page.goto(BASE + '/');
  await page.waitForSelector('#jobs-table');
  check('the jobs page lists jobs', await page.locator('#jobs-table tbody tr').count() >= 1);
  check('the page title names the view', (await page.title()).startsWith('Jobs'));
  // The seed jobs finish; the list shows them succeeded (live, without a reload).
  await page.waitForSelector('#jobs-table .state[data-state="succeeded"]', { timeout: 30000 });
  const listed = await page.locator('#jobs-table tbody tr').count();
  const real = (await api('/jobs?limit=100')).jobs.length;
  check('every job of the API is listed', listed === real, `${listed} vs ${real}`);
  // Idle: the list is polled with If-None-Match and answered 304.
  await page.waitForFunction(() => Number(document.querySelector('#jobs-status')?.dataset.unchanged || 0) >= 2, null, { timeout: 15000 });
  check('an idle job list is polled with 304s', jobListStatuses.filter((s) => s === 304).length >= 2, JSON.stringify(jobListStatuses));
  await shot(page, 'jobs');
});

await step('state filter', async () => {
  await page.selectOption('#state-filter', 'dead');
  await page.waitForURL(/state=dead/);
  await page.waitForSelector('#jobs-table, #jobs-list p');
  const states = await page.locator('#jobs-table tbody .state').evaluateAll((els) => els.map((e) => e.dataset.state));
  check('the state filter shows only dead jobs', states.length >= 1 && states.every((s) => s === 'dead'), JSON.stringify(states));
});

await step('token', async () => {
  await page.goto(BASE + '/#/jobs');
  await page.fill('#token', 'secret-token-123');
  await page.press('#token', 'Enter');
  authHeaders.length = 0;
  await page.waitForSelector('#jobs-table');
  await page.waitForTimeout(2500);
  check('the token is kept in sessionStorage', await page.evaluate(() => sessionStorage.getItem('hcpipe.token')) === 'secret-token-123');
  check('API calls carry Authorization: Bearer', authHeaders.length > 0 && authHeaders.every((h) => h === 'Bearer secret-token-123'), JSON.stringify(authHeaders));
});

let asOf = '2026-06-01';
await step('accredited_by_state', async () => {
  const id = await submitThroughForm(page, 'accredited_by_state', asOf);
  const job = await api('/jobs/' + id);
  check('the form submitted the chosen query and date', job.query === 'accredited_by_state' && job.as_of === asOf);
  const res = await api('/jobs/' + id + '/result.json');
  await page.waitForSelector('#state-map path.state-shape');
  const want = {};
  for (const r of res.rows) if (r.state) want[r.state] = (want[r.state] || 0) + r.facility_count;
  const onMap = await page.locator('#state-map path.state-shape').evaluateAll((els) => Object.fromEntries(els.map((e) => [e.dataset.state, Number(e.dataset.count)])));
  const mapOk = Object.keys(want).filter((k) => k in onMap).every((k) => onMap[k] === want[k]) &&
    Object.keys(onMap).every((k) => onMap[k] === (want[k] || 0));
  check('the map shades every state by its facility count from result.json', mapOk);
  check('the map covers the dataset\'s states', Object.keys(want).filter((k) => !(k in onMap)).length <= 2,
    Object.keys(want).filter((k) => !(k in onMap)).join(','));
  const fills = await page.locator('#state-map path.state-shape').evaluateAll((els) => els.map((e) => [Number(e.dataset.count), e.getAttribute('fill')]));
  const maxCount = Math.max(...fills.map((f) => f[0]));
  const darkest = fills.find((f) => f[0] === maxCount)[1];
  check('the state with most facilities has the darkest shade', darkest === '#08519c', darkest);
  const bars = await page.locator('#state-bars rect').evaluateAll((els) => els.map((e) => [e.dataset.state, Number(e.dataset.value)]));
  check('the bar chart has one bar per state', bars.length === Object.keys(want).length + res.rows.filter((r) => !r.state).length, `${bars.length}`);
  check('the bars are sorted, largest first', bars.every((b, i) => i === 0 || bars[i - 1][1] >= b[1]));
  check('each bar shows its state\'s count', bars.every(([st, v]) => st === '(none)' || want[st] === v));
  const rows = await page.locator('#result-table tbody tr').count();
  check('the table lists every row', rows === Math.min(60, res.row_count), `${rows} vs ${res.row_count}`);
  check('links to result.json and result.csv', (await page.getAttribute('#link-json', 'href')) === `/jobs/${id}/result.json` &&
    (await page.getAttribute('#link-csv', 'href')) === `/jobs/${id}/result.csv`);
  await shot(page, 'result-accredited-by-state');
});

await step('expiring_accreditations', async () => {
  const id = await submitThroughForm(page, 'expiring_accreditations', asOf);
  const res = await api('/jobs/' + id + '/result.json');
  const cells = await page.locator('#result-table tbody tr').evaluateAll((trs) => trs.map((tr) => ({
    days: parseInt(tr.querySelector('td[data-key="days_left"]').textContent.replace(/,/g, ''), 10),
    soon: tr.classList.contains('soon'),
    id: tr.querySelector('td[data-key="facility_id"]').textContent,
  })));
  const sorted = [...res.rows].sort((a, b) => a.days_left - b.days_left);
  check('expiring: sorted by days left', cells.every((c, i) => i === 0 || cells[i - 1].days <= c.days));
  check('expiring: first page matches result.json', cells.length === Math.min(50, res.rows.length) &&
    cells.every((c, i) => c.days === sorted[i].days_left), `${cells.length} rows`);
  check('expiring: rows under 30 days (and only those) are highlighted', cells.some((c) => c.soon) && cells.every((c) => c.soon === (c.days < 30)));
  const soon = res.rows.filter((r) => r.days_left < 30).length;
  check('expiring: the summary counts them', (await page.textContent('#expiring-summary')).includes(soon.toLocaleString('en-US') + ' in under 30 days'));
  await shot(page, 'result-expiring-accreditations');
});

await step('facility_metrics', async () => {
  const id = await submitThroughForm(page, 'facility_metrics', asOf);
  const res = await api('/jobs/' + id + '/result.json');
  check('metrics: the table holds every row', Number(await page.getAttribute('#result-table', 'data-rows')) === res.row_count);
  check('metrics: paged by 25', await page.locator('#result-table tbody tr').count() === 25);
  await page.click('#result-table button.sort[data-key="employee_count"]');
  await page.click('#result-table button.sort[data-key="employee_count"]');
  const maxEmp = Math.max(...res.rows.map((r) => r.employee_count ?? -1));
  const first = await page.textContent('#result-table tbody tr:first-child td[data-key="employee_count"]');
  check('metrics: sorting descending puts the largest first', Number(first.replace(/,/g, '')) === maxEmp, `${first} vs ${maxEmp}`);
  check('metrics: aria-sort says descending', await page.getAttribute('#result-table th:has(button[data-key="employee_count"])', 'aria-sort') === 'descending');
  await page.click('#result-table button[data-page="next"]');
  check('metrics: next page', (await page.textContent('#result-table [data-page-label]')).startsWith('Page 2 of ' + Math.ceil(res.row_count / 25)));
  await shot(page, 'result-facility-metrics');
});

await step('dead job replay', async () => {
  await page.goto(BASE + '/#/dead');
  const btn = page.locator(`button[data-action="replay"][data-job="${DEAD_JOB}"]`);
  await btn.waitFor();
  check('the dead job is listed with its error', (await page.textContent('#dead-table')).includes('Input/output error'));
  await shot(page, 'dead-jobs');
  // Repair the source, then replay from the dashboard.
  fs.rmSync(process.env.DEAD_OBJECT, { force: true });
  fs.copyFileSync(process.env.GOOD_OBJECT, process.env.DEAD_OBJECT);
  await btn.click();
  await page.goto(BASE + '/#/jobs/' + DEAD_JOB);
  await page.waitForSelector('#job-facts .state[data-state="succeeded"]', { timeout: 30000 });
  const job = await api('/jobs/' + DEAD_JOB);
  check('the replayed job succeeded', job.state === 'succeeded', job.state);
  await shot(page, 'job-replayed');
});

await step('keyboard', async () => {
  await page.goto('about:blank');
  await page.goto(BASE + '/#/jobs');
  await page.waitForSelector('#jobs-table');
  await page.keyboard.press('Tab');
  check('the first Tab reaches the skip link', await page.evaluate(() => document.activeElement.className) === 'skip');
  await page.keyboard.press('Enter');
  check('the skip link moves focus to the content', await page.evaluate(() => document.activeElement.id) === 'main');
  // Walk to the "Submit a job" navigation link with Tab and follow it with Enter.
  await page.evaluate(() => document.querySelector('.skip').focus());
  let found = false;
  for (let i = 0; i < 10 && !found; i++) {
    await page.keyboard.press('Tab');
    found = await page.evaluate(() => document.activeElement.getAttribute('data-nav') === 'submit');
  }
  check('Tab reaches the navigation', found);
  await page.keyboard.press('Enter');
  await page.waitForSelector('#submit-form');
  check('Enter follows the link and focus lands on the page heading', await page.evaluate(() => document.activeElement.tagName) === 'H1');
  const unlabelled = await page.evaluate(() => [...document.querySelectorAll('input, select, textarea')]
    .filter((el) => !(el.labels && el.labels.length) && !el.getAttribute('aria-label')).map((el) => el.id || el.name));
  check('every form control has a label', unlabelled.length === 0, unlabelled.join(','));
  // Submit by keyboard only: a bad date is refused with a readable message.
  await page.focus('#f-query');
  await page.keyboard.press('Tab');
  await page.keyboard.type('not-a-uri');
  await page.focus('#f-submit');
  await page.keyboard.press('Enter');
  await page.waitForSelector('#submit-error .error');
  const msg = await page.textContent('#submit-error .error');
  check('a refused submission explains itself', /source/i.test(msg) && /Invalid source/.test(msg), msg);
  check('focus moves to the error', await page.evaluate(() => document.activeElement.classList.contains('error')));
  await shot(page, 'submit-error');
});

await step('phone', async () => {
  await page.setViewportSize({ width: 390, height: 844 });
  await page.goto(BASE + '/#/jobs');
  await page.waitForSelector('#jobs-table');
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  check('no sideways scrolling of the page on a phone', overflow <= 1, String(overflow));
  await shot(page, 'phone-jobs');
  const jobs = (await api('/jobs?state=succeeded&query=accredited_by_state')).jobs;
  await page.goto(BASE + '/#/jobs/' + jobs[0].id);
  await page.waitForSelector('#state-map path.state-shape');
  await shot(page, 'phone-result-map');
});

check('no script errors in the page', consoleErrors.length === 0, consoleErrors.join(' | '));
check('nothing is fetched from another origin (no CDN)', offsite.length === 0, offsite.join(','));
await context.close();
fs.rmSync(userDataDir, { recursive: true, force: true });
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
