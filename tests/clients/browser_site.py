"""A static website, as a person's browser sees it: headless Chromium driven by selenium.

Usage: browser_site.py SITE_BASE_URL SCREENSHOT_DIR [--resolve HOST=IP ...]
                       [--redirect-from PATH --redirect-to URL_SUBSTRING] [--timeout SECONDS]

SITE_BASE_URL is where the site in tests/fixtures/site is served, e.g.
http://mysite.web.localhost:PORT/ (a trailing slash is added when missing). The server must
answer "dir/" with dir/index.html, "dir" with a 302 to "dir/", and a missing key with
error.html and status 404.

--resolve HOST=IP   make Chromium (and this script's own plain HTTP requests) reach HOST at
                    IP; repeatable. A host under .localhost is mapped to 127.0.0.1 unless
                    told otherwise.
--redirect-from/--redirect-to   also check that opening BASE+PATH ends on a URL containing
                    URL_SUBSTRING (a routing rule).

Chromium and its driver are Debian's: /usr/bin/chromium and /usr/bin/chromedriver, or
$CHROMIUM_BINARY and $CHROMEDRIVER. Selenium Manager is never used (nothing is downloaded).
Screenshots index.png, docs.png, error.png (and redirect.png, failure.png) go to SCREENSHOT_DIR.

Prints one "ok: ..." line per check on stdout. Exit status: 0 every check passed; 1 a check
failed (one "FAILED: ..." line on stderr); 2 bad arguments; 3 the browser could not be
started (Chromium or chromedriver missing or broken).
"""

import argparse
import http.client
import json
import os
import shutil
import sys
import tempfile
import time
import urllib.parse

CHECKS = [0]


class CheckFailed(Exception):
    pass


def ok(message):
    CHECKS[0] += 1
    print("ok: " + message, flush=True)


def check(condition, message):
    if not condition:
        raise CheckFailed(message)


def parse_args(argv):
    parser = argparse.ArgumentParser(description="Browser checks of a static website.")
    parser.add_argument("base_url")
    parser.add_argument("screenshot_dir")
    parser.add_argument("--resolve", action="append", default=[], metavar="HOST=IP")
    parser.add_argument("--redirect-from", metavar="PATH")
    parser.add_argument("--redirect-to", metavar="URL_SUBSTRING")
    parser.add_argument("--timeout", type=float, default=20.0, help="seconds to wait for each page")
    args = parser.parse_args(argv)
    if (args.redirect_from is None) != (args.redirect_to is None):
        parser.error("--redirect-from and --redirect-to go together")
    base = urllib.parse.urlsplit(args.base_url)
    if base.scheme not in ("http", "https") or not base.hostname:
        parser.error("the site base URL must be http(s)://HOST[:PORT]/...")
    if not args.base_url.endswith("/"):
        args.base_url += "/"
    args.resolve_map = {}
    for item in args.resolve:
        host, sep, address = item.partition("=")
        if not sep or not host or not address:
            parser.error("--resolve wants HOST=IP, got %r" % item)
        args.resolve_map[host.lower()] = address
    host = base.hostname.lower()
    if host.endswith(".localhost") and host not in args.resolve_map:
        args.resolve_map[host] = "127.0.0.1"
    return args


def http_get(url, resolve_map, timeout):
    """One GET that follows no redirect: (status, headers, body). Honours --resolve and no proxy."""
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname
    port = parts.port or (443 if parts.scheme == "https" else 80)
    address = resolve_map.get(host.lower(), host)
    connection_class = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    connection = connection_class(address, port, timeout=timeout)
    try:
        target = parts.path or "/"
        if parts.query:
            target += "?" + parts.query
        connection.request("GET", target, headers={"Host": parts.netloc, "User-Agent": "browser_site.py"})
        response = connection.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        connection.close()


def start_browser(args, profile_dir):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    binary = os.environ.get("CHROMIUM_BINARY", "/usr/bin/chromium")
    driver_path = os.environ.get("CHROMEDRIVER", "/usr/bin/chromedriver")
    for what, path in (("Chromium", binary), ("chromedriver", driver_path)):
        if not (os.path.isfile(path) and os.access(path, os.X_OK)):
            raise RuntimeError("%s not found at %s (scripts/prerequisites test installs it)" % (what, path))

    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for flag in (
        "--headless=new",
        "--no-sandbox",               # root in a container: the setuid/namespace sandbox is unavailable
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-proxy-server",           # the site is local; never go through an http_proxy from the env
        "--no-first-run",
        "--no-default-browser-check",
        "--disable-extensions",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--window-size=1024,768",
        "--user-data-dir=" + os.path.join(profile_dir, "profile"),
    ):
        options.add_argument(flag)
    if args.resolve_map:
        rules = ", ".join("MAP %s %s" % (host, address) for host, address in sorted(args.resolve_map.items()))
        options.add_argument("--host-resolver-rules=" + rules)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})

    # Chromium wants a writable HOME (and XDG dirs) for its caches and crash reports.
    env = dict(os.environ)
    home = env.get("HOME")
    if not home or not os.access(home, os.W_OK):
        env["HOME"] = profile_dir
    env.setdefault("XDG_CONFIG_HOME", os.path.join(env["HOME"], ".config"))
    env.setdefault("XDG_CACHE_HOME", os.path.join(env["HOME"], ".cache"))
    # Service(executable_path=...) makes selenium skip Selenium Manager altogether.
    service = Service(executable_path=driver_path, env=env, log_output=os.path.join(profile_dir, "chromedriver.log"))
    driver = webdriver.Chrome(service=service, options=options)
    driver.set_page_load_timeout(args.timeout)
    driver.set_script_timeout(args.timeout)
    return driver


def document_responses(driver):
    """Drain the performance log: [(url, status)] of every top-level document response and
    redirect hop seen since the last call, in order."""
    seen = []
    for entry in driver.get_log("performance"):
        try:
            message = json.loads(entry["message"])["message"]
        except (KeyError, ValueError):
            continue
        params = message.get("params", {})
        if message.get("method") == "Network.requestWillBeSent" and params.get("type") == "Document":
            redirect = params.get("redirectResponse")
            if redirect:
                seen.append((redirect.get("url"), redirect.get("status")))
        elif message.get("method") == "Network.responseReceived" and params.get("type") == "Document":
            response = params.get("response", {})
            seen.append((response.get("url"), response.get("status")))
    return seen


def status_of(responses, url):
    statuses = [status for seen_url, status in responses if seen_url == url]
    return statuses[-1] if statuses else None


def wait_for(driver, timeout, description, predicate):
    from selenium.webdriver.support.ui import WebDriverWait
    from selenium.common.exceptions import TimeoutException

    try:
        return WebDriverWait(driver, timeout, poll_frequency=0.1).until(lambda d: predicate(d))
    except TimeoutException:
        raise CheckFailed("timed out after %gs waiting for %s (at %s)" % (timeout, description, driver.current_url))


def element(driver, element_id):
    from selenium.webdriver.common.by import By

    found = driver.find_elements(By.ID, element_id)
    return found[0] if found else None


def screenshot(driver, directory, name):
    path = os.path.join(directory, name)
    check(driver.save_screenshot(path), "could not save screenshot %s" % path)
    check(os.path.getsize(path) > 0, "screenshot %s is empty" % path)
    ok("screenshot %s (%d bytes)" % (path, os.path.getsize(path)))


def run_checks(driver, args):
    base = args.base_url
    timeout = args.timeout
    shots = args.screenshot_dir

    # a. The index document, with its stylesheet, script and image.
    driver.get_log("browser")
    driver.get_log("performance")
    driver.get(base)
    wait_for(driver, timeout, "#title on the index page", lambda d: element(d, "title"))
    responses = document_responses(driver)
    check(status_of(responses, base) == 200, "index %s: document status %r, responses %r"
          % (base, status_of(responses, base), responses))
    check(driver.current_url == base, "index: ended on %s, not %s" % (driver.current_url, base))
    check(driver.title == "Ignifuge test site", "index: title %r" % driver.title)
    ok("index page %s loaded with status 200, title %r" % (base, driver.title))

    color = driver.execute_script("return getComputedStyle(document.getElementById('title')).color")
    check(color == "rgb(1, 2, 3)", "stylesheet not applied: computed color of #title is %r" % color)
    ok("stylesheet css/style.css applied (#title color %s)" % color)

    wait_for(driver, timeout, "#script-ran (js/app.js)", lambda d: element(d, "script-ran"))
    ok("script js/app.js ran (#script-ran is in the DOM)")
    logs = driver.get_log("browser")
    messages = ["%s %s" % (entry.get("level"), entry.get("message")) for entry in logs]
    check(any("site script ran" in entry.get("message", "") for entry in logs),
          "console has no 'site script ran': %r" % messages)
    ok("console log has 'site script ran'")
    severe = [entry.get("message") for entry in logs if entry.get("level") == "SEVERE"]
    check(not severe, "SEVERE console entries on the index page: %r" % severe)
    ok("no SEVERE console entries on the index page")

    width = wait_for(driver, timeout, "img/logo.png to load", lambda d: d.execute_script(
        "var i = document.getElementById('logo'); return i && i.complete && i.naturalWidth;"))
    check(width == 16, "img/logo.png naturalWidth %r, expected 16" % width)
    ok("image img/logo.png loaded (naturalWidth %d)" % width)

    # b.
    screenshot(driver, shots, "index.png")

    # c. A link to a subdirectory gets that subdirectory's index document.
    docs = base + "docs/"
    element(driver, "docs-link").click()
    wait_for(driver, timeout, "#docs-page after clicking #docs-link", lambda d: element(d, "docs-page"))
    check(driver.current_url == docs, "clicking #docs-link ended on %s, not %s" % (driver.current_url, docs))
    responses = document_responses(driver)
    check(status_of(responses, docs) == 200, "docs/: document status %r, responses %r"
          % (status_of(responses, docs), responses))
    ok("clicking #docs-link shows #docs-page at %s (status 200)" % docs)
    screenshot(driver, shots, "docs.png")

    # d. The directory without its slash: a 302 to the slash form.
    bare = base + "docs"
    status, headers, _ = http_get(bare, args.resolve_map, timeout)
    location = headers.get("location", "")
    check(status == 302, "GET %s: status %d, expected 302 (Location %r)" % (bare, status, location))
    check(urllib.parse.urljoin(bare, location) == docs, "GET %s: Location %r does not lead to %s" % (bare, location, docs))
    ok("GET %s answers 302 with Location %s" % (bare, location))
    driver.get_log("performance")
    driver.get(bare)
    wait_for(driver, timeout, "#docs-page after opening %s" % bare, lambda d: element(d, "docs-page"))
    check(driver.current_url == docs, "opening %s ended on %s, not %s" % (bare, driver.current_url, docs))
    responses = document_responses(driver)
    check(status_of(responses, bare) == 302, "browser saw %s with status %r, expected 302: %r"
          % (bare, status_of(responses, bare), responses))
    ok("opening %s in the browser redirects (302) to %s showing #docs-page" % (bare, docs))

    # e. A missing key gets the custom error document with status 404.
    missing = base + "no/such/page.html"
    driver.get_log("performance")
    driver.get(missing)
    wait_for(driver, timeout, "#error-page at %s" % missing, lambda d: element(d, "error-page"))
    check(driver.current_url == missing, "opening %s ended on %s" % (missing, driver.current_url))
    responses = document_responses(driver)
    check(status_of(responses, missing) == 404, "browser saw %s with status %r, expected 404: %r"
          % (missing, status_of(responses, missing), responses))
    status, _, body = http_get(missing, args.resolve_map, timeout)
    check(status == 404, "GET %s: status %d, expected 404" % (missing, status))
    check(b"error-page" in body, "GET %s: body is not error.html: %r" % (missing, body[:200]))
    ok("missing page %s shows #error-page with status 404" % missing)
    screenshot(driver, shots, "error.png")

    # f. A routing rule's redirect.
    if args.redirect_from is not None:
        source = base + args.redirect_from.lstrip("/")
        driver.get(source)
        wait_for(driver, timeout, "a URL containing %r after opening %s" % (args.redirect_to, source),
                 lambda d: args.redirect_to in d.current_url)
        ok("opening %s redirects to %s" % (source, driver.current_url))
        screenshot(driver, shots, "redirect.png")


def main(argv):
    args = parse_args(argv)
    os.makedirs(args.screenshot_dir, exist_ok=True)
    profile_dir = tempfile.mkdtemp(prefix="browser_site.")
    driver = None
    try:
        try:
            driver = start_browser(args, profile_dir)
        except Exception as error:  # noqa: BLE001 - any failure here means no usable browser
            print("FAILED: could not start headless Chromium: %s" % error, file=sys.stderr)
            log = os.path.join(profile_dir, "chromedriver.log")
            if os.path.exists(log):
                with open(log, errors="replace") as handle:
                    sys.stderr.write(handle.read()[-4000:])
            return 3
        try:
            run_checks(driver, args)
        except CheckFailed as failure:
            print("FAILED: %s" % failure, file=sys.stderr)
            try:
                driver.save_screenshot(os.path.join(args.screenshot_dir, "failure.png"))
            except Exception:  # noqa: BLE001 - the screenshot is only a help
                pass
            return 1
        except Exception as error:  # noqa: BLE001 - a WebDriver error is a failed check too
            print("FAILED: %s: %s" % (type(error).__name__, error), file=sys.stderr)
            return 1
        print("all %d checks passed" % CHECKS[0], flush=True)
        return 0
    finally:
        if driver is not None:
            driver.quit()
        shutil.rmtree(profile_dir, ignore_errors=True)


if __name__ == "__main__":
    started = time.monotonic()
    code = main(sys.argv[1:])
    print("browser_site.py: exit %d after %.1fs" % (code, time.monotonic() - started), file=sys.stderr)
    sys.exit(code)
