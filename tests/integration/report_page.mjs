// Open one test's page of the Allure report in headless Chromium, open its attachments by
// name, and print the page's visible text; keep a screenshot. Used by test_report_page.py.
// Usage: node report_page.mjs <playwright-core dir> <report url> <screenshot.png> <attachment>...
import { createRequire } from "node:module";

const [pwDir, url, screenshot, ...attachments] = process.argv.slice(2);
const require = createRequire(`${pwDir}/`);
const { chromium } = require("playwright-core");

const browser = await chromium.launch({
  executablePath: "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
try {
  const page = await browser.newPage({ viewport: { width: 1400, height: 2000 } });
  const outside = [];
  page.on("request", (req) => { if (!req.url().startsWith("file:") && !req.url().startsWith("data:")) outside.push(req.url()); });
  await page.goto(url, { timeout: 30000 });
  for (const name of attachments) {
    const entry = page.getByText(name, { exact: true }).first();
    await entry.waitFor({ timeout: 20000 });
    await entry.click();
  }
  await page.waitForTimeout(1000);
  await page.screenshot({ path: screenshot, fullPage: true });
  console.log(JSON.stringify({ text: await page.innerText("body"), outside }));
} finally {
  await browser.close();
}
