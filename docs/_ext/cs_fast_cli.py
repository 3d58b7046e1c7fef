"""``.. cs-fast-cli::``: the command-line reference, read from :func:`cs_fast_apps.cli.build_parser` at every build.

The directive walks the parser that the ``cs-fast`` command itself uses
(``build_parser()`` without ``argv`` wires every subcommand's arguments) and
renders, for the top level and for each subcommand, a section with its
description, its usage line and one entry per option, the help text expanded
as ``--help`` expands it (``%(default)s`` and the like). Nothing is copied
into the documentation's sources, so the reference cannot fall behind the
parser.

A subcommand whose module needs optional packages that are missing where the
docs are built has no arguments; that is reported as a warning (``-W`` turns
it into an error), because the page would otherwise silently lose its options.
"""

import argparse

from docutils import nodes
from sphinx.util import logging
from sphinx.util.docutils import SphinxDirective

logger = logging.getLogger(__name__)


def _subparsers(parser):
    """``(name, subparser, help)`` of every subcommand of ``parser``, in the parser's order."""
    out = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {choice.dest: choice.help for choice in action._choices_actions}
            for name, sub in action.choices.items():
                out.append((name, sub, helps.get(name)))
    return out


def _usage(parser):
    formatter = parser._get_formatter()
    formatter.add_usage(parser.usage, parser._actions, parser._mutually_exclusive_groups)
    return formatter.format_help().strip()


def _invocation(parser, action):
    """The option strings with their metavar, as ``--help`` writes them (``--n N``, ``--bounds {exact,paper}``)."""
    return parser._get_formatter()._format_action_invocation(action)


def _help(parser, action):
    if not action.help or action.help == argparse.SUPPRESS:
        return ""
    return parser._get_formatter()._expand_help(action)


def _option_list(parser, actions):
    items = nodes.definition_list()
    for action in actions:
        if action.help == argparse.SUPPRESS or isinstance(action, (argparse._SubParsersAction, argparse._HelpAction)):
            continue
        term = nodes.term()
        term += nodes.literal(text=_invocation(parser, action))
        definition = nodes.definition()
        definition += nodes.paragraph(text=_help(parser, action) or "(no help text)")
        item = nodes.definition_list_item()
        item += term
        item += definition
        items += item
    return items


class CliReference(SphinxDirective):
    """Render the whole ``cs-fast`` parser: the top level, then one section per subcommand."""

    has_content = False

    def _section(self, title, anchor):
        section = nodes.section(ids=[nodes.make_id(anchor)], names=[nodes.fully_normalize_name(anchor)])
        section += nodes.title(text=title)
        self.state.document.note_implicit_target(section)
        return section

    def _describe(self, section, parser, summary=None):
        if parser.description:
            section += nodes.paragraph(text=parser.description)
        elif summary:
            section += nodes.paragraph(text=summary[:1].upper() + summary[1:] + ".")
        section += nodes.literal_block(text=_usage(parser), language="none")
        for group in parser._action_groups:
            actions = [a for a in group._group_actions
                       if a.help != argparse.SUPPRESS and not isinstance(a, argparse._HelpAction)]
            if not actions:
                continue
            if group.title not in ("options", "optional arguments", "positional arguments"):
                section += nodes.rubric(text=group.title[:1].upper() + group.title[1:])
            elif group.title == "positional arguments":
                section += nodes.rubric(text="Positional arguments")
            section += _option_list(parser, actions)

    def run(self):
        from cs_fast_apps.cli import build_parser

        parser = build_parser()
        self.env.note_dependency(__file__)
        out = []
        subs = _subparsers(parser)
        top = nodes.container()
        top += nodes.paragraph(text=parser.description or "")
        top += nodes.literal_block(text=_usage(parser), language="none")
        listing = nodes.bullet_list()
        for name, _, text in subs:
            item = nodes.list_item()
            para = nodes.paragraph()
            ref = nodes.reference("", "", internal=True, refid=nodes.make_id(f"cs-fast {name}"))
            ref += nodes.literal(text=f"cs-fast {name}")
            para += ref
            if text:
                para += nodes.Text(f": {text}")
            item += para
            listing += item
        top += listing
        out.append(top)
        for name, sub, text in subs:
            real = [a for a in sub._actions if not isinstance(a, argparse._HelpAction)]
            if not real:
                logger.warning(
                    "cs-fast %s has no arguments where the docs are built: its module needs optional packages "
                    "that are not installed (install the test extra, as .ci/run does)", name,
                    location=self.get_location())
            section = self._section(f"cs-fast {name}", f"cs-fast {name}")
            self._describe(section, sub, text)
            out.append(section)
        return out


def setup(app):
    app.add_directive("cs-fast-cli", CliReference)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
