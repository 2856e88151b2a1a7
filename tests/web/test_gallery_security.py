"""Who sees what through a /gallery link: only this server, only channels the member could
see, nothing once the link has expired or was altered, no file outside the outputs folder."""

from __future__ import annotations

import html
import re
import time

import discord

from tests.web.conftest import Site, make_image_job

NSFW_MODEL = "Hevok/Studio-Trigger"
COMICS = "Adel_AI/Comics-Factory-v1"


def job_ids(html: str) -> list[int]:
    return [int(n) for n in re.findall(r'data-job="(\d+)"', html)]


def token_of(link: str) -> str:
    found = re.search(r"/g/([^/]+)/", link)
    assert found
    return found.group(1)


async def test_a_link_shows_this_servers_images_newest_first(site: Site) -> None:
    h = site.harness
    fox = await make_image_job(h, h.alice, "a red fox")
    owl = await make_image_job(h, h.bob, "an owl at night")
    await site.link(h.bob)  # names are learnt from interactions (there is no members intent)
    link = await site.link(h.alice)
    page = await site.get(link)
    assert page.status == 200
    assert job_ids(page.text) == [owl.id, fox.id]
    assert "alice" in page.text and "bob" in page.text  # names, not ids
    assert "default-src 'none'" in page.headers["Content-Security-Policy"]
    assert page.headers["Referrer-Policy"] == "no-referrer"


async def test_an_expired_link_opens_nothing(site: Site) -> None:
    h = site.harness
    await make_image_job(h, h.alice, "a red fox")
    link = await site.link(h.alice)
    web = h.bot.web
    assert web is not None
    web.context.clock = lambda: time.time() + 25 * 3600
    page = await site.get(link)
    assert page.status == 403
    assert "This link has expired." in page.text
    assert "a red fox" not in page.text
    assert (await site.get(link + "thumb/1/0")).status == 403


async def test_an_altered_link_opens_nothing(site: Site) -> None:
    h = site.harness
    fox = await make_image_job(h, h.alice, "a red fox")
    link = await site.link(h.alice)
    token = token_of(link)
    payload, mac = token.split(".")
    flipped = payload[:-2] + ("A" if payload[-2] != "A" else "B") + payload[-1]
    for forged in (f"{flipped}.{mac}", f"{payload}.{mac[:-1]}x", f"{payload}.", "x.y"):
        page = await site.get(f"/g/{forged}/")
        assert page.status in (403, 404), forged
        assert "a red fox" not in page.text
        assert (await site.get(f"/g/{forged}/img/{fox.id}/0")).status in (403, 404)


async def test_a_link_for_one_server_never_shows_anothers_jobs(site: Site) -> None:
    h = site.harness
    here = await make_image_job(h, h.alice, "a red fox")
    other_guild = h.env.create_guild("Elsewhere")
    other_channel = other_guild.create_text_channel("paint")
    alice_there = other_guild.add_member(h.alice.user)
    there = await make_image_job(
        h, h.alice, "a blue whale", channel=other_channel, guild_id=other_guild.id
    )

    link_there = await site.link(alice_there, other_channel)
    page = await site.get(link_there)
    assert job_ids(page.text) == [there.id]
    # The other server's job, by its number, through this server's link: nothing.
    assert (await site.get(f"{link_there}job/{here.id}")).status == 404
    assert (await site.get(f"{link_there}img/{here.id}/0")).status == 404
    assert (await site.get(f"{link_there}?member={h.alice.id}")).text.count("data-job") == 1


async def test_only_channels_the_member_could_see(site: Site) -> None:
    h = site.harness
    secret = h.guild.create_text_channel(
        "secret",
        overwrites={
            h.guild.default_role: discord.PermissionOverwrite(view_channel=False),
            h.bob: discord.PermissionOverwrite(view_channel=True),
        },
    )
    public = await make_image_job(h, h.bob, "a public cat")
    hidden = await make_image_job(h, h.bob, "a secret dog", channel=secret)

    alice = await site.link(h.alice)
    assert job_ids((await site.get(alice)).text) == [public.id]
    assert (await site.get(f"{alice}job/{hidden.id}")).status == 404
    assert (await site.get(f"{alice}thumb/{hidden.id}/0")).status == 404
    # Filtering by the member does not bring it back either.
    assert job_ids((await site.get(f"{alice}?member={h.bob.id}")).text) == [public.id]

    bob = await site.link(h.bob)
    assert job_ids((await site.get(bob)).text) == [hidden.id, public.id]


async def test_a_link_made_before_losing_access_to_a_channel_no_longer_shows_it(
    site: Site,
) -> None:
    """The link keeps the member's roles from when they asked; each page checks those against
    the channel as it is now. (A role taken from the member is only seen when the link
    expires: the bot has no members intent.)"""
    h = site.harness
    me = h.guild.me
    assert me is not None
    secret = h.guild.create_text_channel(
        "secret",
        overwrites={
            h.guild.default_role: discord.PermissionOverwrite(view_channel=False),
            h.bob: discord.PermissionOverwrite(view_channel=True),
            me: discord.PermissionOverwrite(view_channel=True, manage_roles=True),
        },
    )
    hidden = await make_image_job(h, h.alice, "a secret dog", channel=secret)
    bob = await site.link(h.bob)
    assert job_ids((await site.get(bob)).text) == [hidden.id]

    channel = h.bot.get_channel(secret.id)
    assert isinstance(channel, discord.TextChannel)
    bob_member = await channel.guild.fetch_member(h.bob.id)
    await channel.set_permissions(bob_member, view_channel=False)

    assert job_ids((await site.get(bob)).text) == []
    assert (await site.get(f"{bob}job/{hidden.id}")).status == 404
    assert (await site.get(f"{bob}img/{hidden.id}/0")).status == 404


async def test_jobs_from_an_age_restricted_channel_are_blurred_unless_asked_there(
    site: Site,
) -> None:
    h = site.harness
    spicy = await make_image_job(h, h.alice, "after dark", channel=h.nsfw_channel)
    comic = await make_image_job(h, h.alice, "a comic hero", model=NSFW_MODEL)
    tame = await make_image_job(h, h.alice, "a teapot")

    from_art = (await site.get(await site.link(h.alice, h.channel))).text
    blurred = [int(n) for n in re.findall(r'class="tile nsfw" data-job="(\d+)"', from_art)]
    assert sorted(blurred) == sorted([spicy.id, comic.id])
    assert f'class="tile" data-job="{tame.id}"' in from_art

    from_after_dark = (await site.get(await site.link(h.alice, h.nsfw_channel))).text
    assert "tile nsfw" not in from_after_dark
    assert job_ids(from_after_dark) == [tame.id, comic.id, spicy.id]


async def test_a_member_who_cannot_see_the_age_restricted_channel_sees_none_of_it(
    site: Site,
) -> None:
    h = site.harness
    hidden = h.guild.create_text_channel(
        "hidden-nsfw",
        overwrites={h.alice: discord.PermissionOverwrite(view_channel=False)},
    )
    h.age_restricted.add("hidden-nsfw")
    job = await make_image_job(h, h.bob, "after dark", channel=hidden)
    alice = await site.link(h.alice)
    assert job_ids((await site.get(alice)).text) == []
    assert (await site.get(f"{alice}job/{job.id}")).status == 404


async def test_no_path_leads_out_of_the_outputs_folder(site: Site, tmp_path) -> None:  # type: ignore[no-untyped-def]
    h = site.harness
    fox = await make_image_job(h, h.alice, "a red fox")
    link = await site.link(h.alice)
    token = token_of(link)
    for path in (
        f"/g/{token}/img/../../../../etc/passwd",
        f"/g/{token}/img/%2e%2e/%2e%2e/etc/passwd",
        f"/g/{token}/img/{fox.id}/..%2f..%2fwirobot.db",
        "/static/../../wirobot.db",
        "/static/..%2f..%2fsettings.py",
        "/static/%2e%2e/app.py",
    ):
        page = await site.get(path, raw=True)
        assert page.status in (403, 404), path
        assert b"root:" not in page.body and b"SQLite" not in page.body

    # A stored path outside the folder (a forged row, a symlink) serves nothing.
    outside = tmp_path / "outside.png"
    outside.write_bytes(b"\x89PNG secret")
    store = h.runtime.store
    await store.jobs.finish(
        fox.id,
        [fox.outputs[0].__class__(0, "x.png", "image/png", 10, "u", str(outside), 1, 1)],
    )
    assert (await site.get(f"{link}img/{fox.id}/0")).status == 404
    link_in = h.settings.database.outputs_path / "link.png"
    link_in.symlink_to(outside)
    await store.jobs.finish(
        fox.id,
        [fox.outputs[0].__class__(0, "x.png", "image/png", 10, "u", str(link_in), 1, 1)],
    )
    assert (await site.get(f"{link}img/{fox.id}/0")).status == 404
    assert (await site.get(f"{link}thumb/{fox.id}/0")).status == 404


async def test_every_query_parameter_is_checked(site: Site) -> None:
    h = site.harness
    await make_image_job(h, h.alice, "a red fox")
    link = await site.link(h.alice)
    for query, words in (
        ("page=2", "'page' is not a parameter of this page"),
        ("member=alice", "member must be a whole number"),
        ("before=-1", "before must be a whole number"),
        ("model=..%2F..%2Fetc", "model must be a model name like owner/project"),
        ("q=" + "x" * 201, "q (prompt text) must be at most 200 characters"),
        ("partial=yes", "partial must be 1"),
    ):
        page = await site.get(f"{link}?{query}")
        assert page.status == 400, query
        assert words in html.unescape(page.text), query
    assert (await site.get(f"{link}job/1?x=1")).status == 400


async def test_the_spend_page_is_for_those_who_manage_the_server(site: Site) -> None:
    h = site.harness
    await make_image_job(h, h.alice, "a red fox", cost=0.25)
    await make_image_job(h, h.alice, "a comic", model=COMICS, cost=0.5)
    alice = await site.link(h.alice)
    assert (await site.get(f"{alice}spend")).status == 403
    assert "Spend" not in (await site.get(alice)).text.split("<main>")[0]

    managers = h.guild.create_role("Managers", permissions=discord.Permissions(manage_guild=True))
    boss = h.guild.add_member(h.env.create_user("boss"), roles=[managers])
    page = await site.get(f"{await site.link(boss)}spend")
    assert page.status == 200
    assert "Spend, last 30 days: $0.75" in page.text
    assert re.search(r"<td>Adel_AI/Comics-Factory-v1</td><td>1</td><td>\$0.5</td>", page.text)
