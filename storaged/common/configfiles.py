"""Which configuration files a command read, and where each option was set.

Plain file reading on top of oslo.config, with no storaged option imported:
the option modules (``storaged/conf/``) use it to find the ``[api] user_*``
entries, and :mod:`storaged.common.config` to name the file of a bad value.
"""

from __future__ import annotations

from collections.abc import Sequence
import os

from oslo_config import cfg


class OptionSources:
    """Where each ``[section] option`` of the parsed files was set.

    oslo.config cannot say where an *invalid* value came from, so the files are
    read once more, in the order oslo.config reads them (later files win).
    """

    def __init__(self, files: Sequence[str]) -> None:
        self.files = list(files)
        #: (section, option) -> file that set it last
        self.location: dict[tuple[str, str], str] = {}
        #: (section, option) -> the raw text of the value that wins
        self.raw: dict[tuple[str, str], str] = {}
        #: section -> first file that has it
        self.section_location: dict[str, str] = {}
        for path in self.files:
            sections: dict[str, dict[str, list[str]]] = {}
            cfg.ConfigParser(path, sections).parse()
            for section, values in sections.items():
                self.section_location.setdefault(section, path)
                for option, texts in values.items():
                    self.location[(section, option)] = path
                    if texts:
                        self.raw[(section, option)] = texts[-1]

    def where(self, group: str | None, option: str) -> str:
        """Return the file that set ``[group] option``, or how else it was set."""
        path = self.location.get((group or "DEFAULT", option))
        return path or "command line or environment"


def config_files(conf: cfg.ConfigOpts) -> list[str]:
    """List the files oslo.config read, in reading order."""
    files = list(conf.config_file or [])
    for directory in conf.config_dir or []:
        try:
            names = sorted(os.listdir(directory))
        except OSError:
            continue
        files.extend(os.path.join(directory, n) for n in names if n.endswith(".conf"))
    return files
