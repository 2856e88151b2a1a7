"""The gallery in a real browser: headless Chromium, driven by Selenium through the system
chromedriver, opens a link that /gallery gave in the simulated Discord; pages, filters and
opens a job, at desktop and phone widths. Screenshots go to tests/artifacts/ (not committed).

Skipped, saying why, only where Chromium cannot start (`.ci/run` installs it).
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import discord
import pytest

from tests.discord.conftest import Harness
from tests.web.conftest import Site, make_image_job

webdriver = pytest.importorskip("selenium.webdriver")
from selenium.common.exceptions import (  # noqa: E402
    StaleElementReferenceException,
    WebDriverException,
)
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.remote.webdriver import WebDriver  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
DESKTOP = (1280, 900)
PHONE = (390, 844)
WAIT = 10.0


@pytest.fixture
def browser() -> Iterator[WebDriver]:
    if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
        pytest.skip(f"Chromium is not installed ({CHROMIUM}, {CHROMEDRIVER}); .ci/run installs it")
    profile = tempfile.mkdtemp(prefix="wirobot-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        f"--user-data-dir={profile}",
    ):
        options.add_argument(flag)
    try:
        # The system driver: never Selenium Manager, which would try to download one.
        driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    except (WebDriverException, OSError) as exc:
        shutil.rmtree(profile, ignore_errors=True)
        pytest.skip(f"Chromium could not start: {str(exc).splitlines()[0]}")
    driver.set_page_load_timeout(WAIT)
    ARTIFACTS.mkdir(exist_ok=True)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


async def fill_the_gallery(h: Harness) -> None:
    """One job made through /imagine and the Wiro stand-in, and 30 more from the past."""
    await h.alice.slash(h.channel, "imagine", prompt="a lighthouse in a storm")
    await h.finish(await h.last_job())
    for n in range(30):
        who = h.alice if n % 2 else h.bob
        prompt = f"a lighthouse at dawn, study {n}" if n % 10 == 0 else f"a cat, study {n}"
        await make_image_job(h, who, prompt, images=1 + n % 2)
    await make_image_job(h, h.bob, "after dark", channel=h.nsfw_channel)
    await h.bob.slash(h.channel, "history")  # bob's name is learnt from an interaction


def tiles(driver: WebDriver) -> list:  # type: ignore[type-arg]
    return driver.find_elements(By.CSS_SELECTOR, "article.tile")


def wait_for(driver: WebDriver, condition, what: str) -> None:  # type: ignore[no-untyped-def]
    WebDriverWait(driver, WAIT).until(lambda d: condition(d), message=what)


def wait_for_texts(
    driver: WebDriver, selector: str, ready: Callable[[list[str]], bool], what: str
) -> list[str]:
    """The texts of the elements matching `selector`, once `ready` holds for them. Right after
    a form is sent the URL is already the new page's while the old page is being replaced:
    elements found then go stale, and they are looked for again."""
    found: list[str] = []

    def look(d: WebDriver) -> bool:
        nonlocal found
        try:
            found = [e.text for e in d.find_elements(By.CSS_SELECTOR, selector)]
        except StaleElementReferenceException:
            return False
        return ready(found)

    wait_for(driver, look, what)
    return found


def images_loaded(driver: WebDriver) -> bool:
    return bool(
        driver.execute_script(
            "return [...document.images].filter(i => i.getBoundingClientRect().top < innerHeight)"
            ".every(i => i.complete && i.naturalWidth > 0)"
        )
    )


def browse_at_desktop(driver: WebDriver, link: str) -> None:
    driver.set_window_size(*DESKTOP)
    driver.get(link)
    assert driver.find_element(By.CSS_SELECTOR, "header h1").text == "Wiro Lovers"
    assert len(tiles(driver)) == 24  # the first page
    wait_for(driver, images_loaded, "the thumbnails to load")
    driver.save_screenshot(str(ARTIFACTS / "desktop-gallery.png"))

    # The NSFW job is blurred until clicked.
    nsfw = driver.find_element(By.CSS_SELECTOR, "article.tile.nsfw")
    image = nsfw.find_element(By.TAG_NAME, "img")
    assert "blur" in image.value_of_css_property("filter")
    nsfw.find_element(By.CSS_SELECTOR, "button.reveal").click()
    assert image.value_of_css_property("filter") == "none"

    # Endless scroll: the older images come in at the end of the page.
    driver.execute_script("window.scrollTo(0, document.body.scrollHeight)")
    wait_for(driver, lambda d: len(tiles(d)) == 32, "the older images to load")
    assert not driver.find_elements(By.CSS_SELECTOR, "a.more")

    # Filter by prompt text, then by member.
    search = driver.find_element(By.NAME, "q")
    search.send_keys("lighthouse")
    driver.find_element(By.CSS_SELECTOR, "form.filters button[type=submit]").click()
    wait_for(driver, lambda d: "q=lighthouse" in d.current_url, "the filtered page")
    prompts = wait_for_texts(
        driver, "article.tile .prompt", lambda found: len(found) == 4, "the filtered tiles"
    )
    assert prompts == [
        "a lighthouse at dawn, study 20",
        "a lighthouse at dawn, study 10",
        "a lighthouse at dawn, study 0",
        "a lighthouse in a storm",
    ]
    member = driver.find_element(By.NAME, "member")
    member.find_element(By.XPATH, "option[text()='bob']").click()
    driver.find_element(By.CSS_SELECTOR, "form.filters button[type=submit]").click()
    wait_for(driver, lambda d: "member=" in d.current_url, "the member's page")
    metas = wait_for_texts(
        driver, "article.tile .meta", lambda found: len(found) == 3, "the member's tiles"
    )
    assert all(m.startswith("bob ·") for m in metas)
    driver.save_screenshot(str(ARTIFACTS / "desktop-filtered.png"))

    # Open a job: every input, the seed, the cost, the time, the /imagine line.
    driver.find_element(By.CSS_SELECTOR, "article.tile a.shots").click()
    wait_for(driver, lambda d: "/job/" in d.current_url, "the job page")
    wait_for(driver, images_loaded, "the job's images to load")
    facts = "\n".join(wait_for_texts(driver, "table.facts", bool, "the job's facts"))
    assert "Seed 7" in facts and "Cost $0.0042" in facts and "Time taken 6.5 s" in facts
    line = driver.find_element(By.ID, "imagine").text
    assert line.startswith("/imagine prompt:a lighthouse at dawn, study 20 model:")
    assert "seed:7" in line
    driver.save_screenshot(str(ARTIFACTS / "desktop-job.png"))


def browse_on_a_phone(driver: WebDriver, link: str) -> None:
    driver.set_window_size(*PHONE)
    driver.get(link + "mine")
    wait_for(driver, images_loaded, "the thumbnails to load")
    width = driver.execute_script("return document.documentElement.clientWidth")
    scroll_width = driver.execute_script("return document.documentElement.scrollWidth")
    assert scroll_width <= width, "the page scrolls sideways on a phone"
    lefts = [t.rect["x"] for t in tiles(driver)[:3]]
    assert lefts[0] == lefts[2] < lefts[1]  # two columns
    metas = [m.text for m in driver.find_elements(By.CSS_SELECTOR, "article.tile .meta")]
    assert metas and all(m.startswith("alice ·") for m in metas)
    driver.save_screenshot(str(ARTIFACTS / "phone-mine.png"))
    tiles(driver)[0].find_element(By.CSS_SELECTOR, "a.shots").click()
    wait_for(driver, lambda d: "/job/" in d.current_url, "the job page")
    wait_for(driver, images_loaded, "the job's images to load")
    assert driver.execute_script("return document.documentElement.scrollWidth") <= width
    driver.save_screenshot(str(ARTIFACTS / "phone-job.png"))


async def test_a_member_browses_the_gallery_from_a_gallery_link(
    site: Site, browser: WebDriver
) -> None:
    h = site.harness
    await fill_the_gallery(h)
    link = await site.link(h.alice)
    # Selenium blocks: it runs in a thread while the bot serves the pages on this loop.
    await asyncio.to_thread(browse_at_desktop, browser, link)
    await asyncio.to_thread(browse_on_a_phone, browser, link)


async def test_an_expired_link_shows_only_a_way_back(site: Site, browser: WebDriver) -> None:
    h = site.harness
    await make_image_job(h, h.alice, "a red fox")
    link = await site.link(h.alice)
    web = h.bot.web
    assert web is not None
    web.context.clock = lambda: 1e12

    def look() -> None:
        browser.set_window_size(*PHONE)
        browser.get(link)
        assert browser.find_element(By.TAG_NAME, "h2").text == "This link has expired."
        assert not browser.find_elements(By.TAG_NAME, "img")
        browser.save_screenshot(str(ARTIFACTS / "phone-expired.png"))

    await asyncio.to_thread(look)


async def test_a_server_manager_sees_the_spend_by_day_and_model(
    site: Site, browser: WebDriver
) -> None:
    h = site.harness
    await make_image_job(h, h.alice, "a red fox", cost=0.25)
    await make_image_job(h, h.bob, "a comic", model="Adel_AI/Comics-Factory-v1", cost=0.5)
    managers = h.guild.create_role("Managers", permissions=discord.Permissions(manage_guild=True))
    boss = h.guild.add_member(h.env.create_user("boss"), roles=[managers])
    link = await site.link(boss)

    def look() -> None:
        browser.set_window_size(*PHONE)
        browser.get(link)
        browser.find_element(By.LINK_TEXT, "Spend").click()
        wait_for(browser, lambda d: d.current_url.endswith("/spend"), "the spend page")
        assert browser.find_element(By.TAG_NAME, "h2").text == "Spend, last 30 days: $0.75"
        rows = browser.find_elements(By.CSS_SELECTOR, "section.spend table:last-of-type tr")
        assert [r.text for r in rows[1:]] == [
            "Adel_AI/Comics-Factory-v1 1 $0.5",
            "wavymulder/portraitplus 1 $0.25",
        ]
        browser.save_screenshot(str(ARTIFACTS / "phone-spend.png"))

    await asyncio.to_thread(look)


@pytest.fixture
def web_database() -> str:
    """In a browser on SQLite only: the pages' PostgreSQL run is tests/web's server tests."""
    return "sqlite"
