"""Building, validating and explaining a command's configuration.

:func:`prepare_service` is the one way a storaged command gets its
configuration: a fresh ``ConfigOpts`` (never a global), every storaged,
oslo.log and oslo.service option registered, the command line and the files
parsed, **every** value checked at once, then oslo.log set up.

A bad configuration never reaches the daemon.  Whatever is wrong (a missing or
unreadable file, a malformed line, a bad number or boolean, a value out of
range, an unknown option or section, an unknown driver) is raised as one
:class:`~storaged.exception.ConfigError` whose text names the file, the
section, the option and the problem, e.g.::

    /etc/storaged/storaged.conf: [kvs] timeout: could not convert string to float: 'abc'

:func:`run_command` turns that into one line on stderr and exit status 2.
"""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Iterator
from collections.abc import Sequence
import logging
import os
import re
import sys
from typing import Any
from urllib import parse as urlparse

from oslo_config import cfg
from oslo_service import opts as service_opts

from storaged import concurrency
from storaged import exception
from storaged import opts as storaged_opts
from storaged import version
from storaged.common.configfiles import OptionSources as OptionSources
from storaged.common.configfiles import config_files as config_files

LOG = logging.getLogger(__name__)

#: exit status for a configuration error (as argparse uses for usage errors)
EXIT_CONFIG = 2

_PARSE_AT = re.compile(r"^at .*:(?P<line>\d+), (?P<msg>.*)$", re.DOTALL)
_NOT_VALID = re.compile(r" is not valid: (?P<problem>.*)$", re.DOTALL)

#: extra validation run after parsing; each callable raises ConfigError
Validator = Callable[[cfg.ConfigOpts, "OptionSources"], None]


def _registered(conf: cfg.ConfigOpts) -> dict[str, set[str]]:
    """Map each registered group to the option names it accepts in files."""
    known: dict[str, set[str]] = {}
    # NOTE: oslo.config has no public way to list deprecated option names,
    # which files may still use; read them from the registered Opt objects.
    groups: dict[str, Any] = {"DEFAULT": conf._opts}
    for name, group in conf._groups.items():
        groups[name] = group._opts
    for group_name, opts in groups.items():
        names = known.setdefault(group_name, set())
        for info in opts.values():
            opt = info["opt"]
            names.add(opt.dest)
            names.add(opt.name)
            for dep in opt.deprecated_opts:
                # A deprecated name may live in another group (the option
                # moved); without a group it is in the option's own group.
                dep_group = dep.group or group_name
                dep_name = (dep.name or opt.dest).replace("-", "_")
                known.setdefault(dep_group, set()).add(dep_name)
    return known


def _iter_values(conf: cfg.ConfigOpts) -> Iterator[tuple[str | None, str]]:
    for group_name in sorted(_registered(conf)):
        if group_name != "DEFAULT" and group_name not in conf._groups:
            continue  # only known as the old home of a deprecated name
        opts = conf._opts if group_name == "DEFAULT" else (
            conf._groups[group_name]._opts
        )
        for name in sorted(opts):
            yield (None if group_name == "DEFAULT" else group_name), name


def _check_values(conf: cfg.ConfigOpts, sources: OptionSources) -> None:
    """Read every option once, so that a bad value fails now, not at 3 a.m."""
    for group, name in _iter_values(conf):
        try:
            conf[name] if group is None else conf[group][name]
        except cfg.ConfigFileValueError as err:
            match = _NOT_VALID.search(str(err))
            problem = match.group("problem") if match else str(err)
            raw = sources.raw.get((group or "DEFAULT", name))
            if _is_secret(conf, group, name):
                problem = "invalid value (not shown: the option is secret)"
            elif raw is not None and repr(raw) not in problem:
                problem = "%s (got %r)" % (problem, raw)
            raise exception.ConfigError(
                problem, sources.where(group, name), group or "DEFAULT", name
            ) from err
        except cfg.NoSuchOptError as err:
            raise exception.ConfigError(
                "bad substitution: $%s is not an option" % err.opt_name,
                sources.where(group, name),
                group or "DEFAULT",
                name,
            ) from err
        except cfg.TemplateSubstitutionError as err:
            raise exception.ConfigError(
                "bad substitution: %s" % (err.msg or "").split(": ", 1)[-1],
                sources.where(group, name),
                group or "DEFAULT",
                name,
            ) from err


def _is_secret(conf: cfg.ConfigOpts, group: str | None, name: str) -> bool:
    opts = conf._opts if group is None else conf._groups[group]._opts
    return bool(opts[name]["opt"].secret)


def _check_unknown(conf: cfg.ConfigOpts, sources: OptionSources) -> None:
    """Refuse options and sections nothing reads: they are typos."""
    known = _registered(conf)
    for path in sources.files:
        sections: dict[str, dict[str, list[str]]] = {}
        cfg.ConfigParser(path, sections).parse()
        for section, values in sections.items():
            # An empty section sets nothing (the sample config lists each
            # driver's options under a commented-out example section).
            if section not in known and values:
                raise exception.ConfigError(
                    "unknown section (known: %s)" % ", ".join(sorted(known)),
                    path,
                    section,
                )
            for option in values:
                if option not in known[section]:
                    raise exception.ConfigError("unknown option", path, section, option)


def _check_storaged(
    conf: cfg.ConfigOpts, sources: OptionSources, daemon: bool
) -> None:
    """Checks that need several options or knowledge of the drivers."""
    from storaged import coordination
    from storaged import kvs
    from storaged import objectstore

    if not os.path.isabs(conf.state_path):
        raise exception.ConfigError(
            "must be an absolute path, not %r" % conf.state_path,
            sources.where(None, "state_path"),
            "DEFAULT",
            "state_path",
        )
    try:
        kvs.validate_url(conf.kvs.backend_url)
    except ValueError as err:
        raise exception.ConfigError(
            str(err), sources.where("kvs", "backend_url"), "kvs", "backend_url"
        ) from err
    objectstore.validate_conf(conf, sources)
    coordination.validate_conf(conf, sources)
    grace = conf.graceful_shutdown_timeout
    if grace and grace <= conf.daemon.stop_timeout:
        raise exception.ConfigError(
            "must be larger than [daemon] stop_timeout (%s), or 0"
            % conf.daemon.stop_timeout,
            sources.where(None, "graceful_shutdown_timeout"),
            "DEFAULT",
            "graceful_shutdown_timeout",
        )
    active = concurrency.backend() if daemon and _has_backend() else None
    if (
        active is not None
        and conf.concurrency_backend != active
        and not os.environ.get(concurrency.ENV_VAR)
    ):
        raise exception.ConfigError(
            "is %r but the process started with %r (%s); set it in a file "
            "given with --config-file or in the environment variable %s"
            % (
                conf.concurrency_backend,
                active,
                concurrency.backend_source(),
                concurrency.ENV_VAR,
            ),
            sources.where(None, "concurrency_backend"),
            "DEFAULT",
            "concurrency_backend",
        )


def _has_backend() -> bool:
    try:
        concurrency.backend()
    except RuntimeError:
        return False
    return True


def register_all(conf: cfg.ConfigOpts, setup_logging: bool = True) -> None:
    """Register every option a storaged command may read.

    :param setup_logging: oslo.log will be set up on ``conf`` (it keeps the
        ``conf`` then, to reload on SIGHUP); otherwise its options are only
        registered, as files may hold them, without importing its logging
        machinery (a fifth of a command's start-up).
    """
    storaged_opts.register_opts(conf)
    if setup_logging:
        from oslo_log import log as oslo_logging

        oslo_logging.register_options(conf)
    else:
        from oslo_log import _options as log_options

        conf.register_cli_opts(log_options.common_cli_opts)
        conf.register_cli_opts(log_options.logging_cli_opts)
        conf.register_opts(log_options.generic_log_opts)
        conf.register_opts(log_options.log_opts)
    service_opts.register_service_opts(conf)


def prepare_service(
    argv: Sequence[str],
    *,
    prog: str,
    description: str | None = None,
    cli_opts: Sequence[cfg.Opt] = (),
    register: Callable[[cfg.ConfigOpts], None] | None = None,
    validators: Sequence[Validator] = (),
    setup_logging: bool = True,
    conf: cfg.ConfigOpts | None = None,
    daemon: bool = True,
) -> cfg.ConfigOpts:
    """Build, parse and validate a command's configuration; set up logging.

    :param argv: command line arguments, without the program name.
    :param prog: the command's name, for ``--help`` and log lines.
    :param description: one paragraph for ``--help``.
    :param cli_opts: command line options of this command (``--once``, …).
    :param register: registers more options (a sub-command, drivers).
    :param validators: more checks, run after the common ones.
    :param setup_logging: set up oslo.log (off for ``config check`` output).
    :param conf: an empty ``ConfigOpts`` to fill (tests); a new one otherwise.
    :param daemon: the process must run on ``concurrency_backend`` (a
        daemon); False for a command that runs on native threads whatever
        the files say (``storaged-manage``).
    :returns: the parsed ``ConfigOpts``.
    :raises storaged.exception.ConfigError: anything wrong, in one line.
    """
    conf = conf if conf is not None else cfg.ConfigOpts()
    register_all(conf, setup_logging)
    if cli_opts:
        conf.register_cli_opts(list(cli_opts))
    if register is not None:
        register(conf)
    try:
        conf(
            list(argv),
            project="storaged",
            prog=prog,
            version=version.version_string(),
            description=description,
        )
    except cfg.ConfigFilesNotFoundError as err:
        raise exception.ConfigError(
            "configuration file not found", ", ".join(err.config_files)
        ) from err
    except cfg.ConfigFilesPermissionDeniedError as err:
        raise exception.ConfigError(
            "configuration file not readable (permission denied)",
            ", ".join(err.config_files),
        ) from err
    except cfg.ConfigDirNotFoundError as err:
        raise exception.ConfigError(
            "configuration directory not found", err.config_dir
        ) from err
    except cfg.ConfigFileParseError as err:
        match = _PARSE_AT.match(err.msg or "")
        problem = (
            "line %s: %s" % (match.group("line"), match.group("msg"))
            if match
            else err.msg
        )
        raise exception.ConfigError(
            "malformed file: %s" % problem, err.config_file
        ) from err
    except IsADirectoryError as err:
        raise exception.ConfigError(
            "is a directory, not a configuration file (use --config-dir)",
            str(err.filename),
        ) from err
    except UnicodeDecodeError as err:
        raise _not_utf8(argv) from err
    except OSError as err:
        raise exception.ConfigError(
            "cannot read configuration: %s" % err.strerror, str(err.filename or "")
        ) from err

    sources = OptionSources(config_files(conf))
    try:
        _check_values(conf, sources)
        # Groups that depend on values (one group per enabled back end) can
        # only be registered now; the unknown-option check must come after.
        storaged_opts.register_dynamic_opts(conf)
        _check_unknown(conf, sources)
        _check_values(conf, sources)
        _check_storaged(conf, sources, daemon)
        for check in validators:
            check(conf, sources)
    except exception.ConfigError as err:
        if err.location != "configuration" or not (err.group or err.option):
            raise
        # A check that knew the option but not the file: say where it was set.
        raise exception.ConfigError(
            err.problem,
            sources.where(
                None if err.group in (None, "DEFAULT") else err.group,
                err.option or "",
            ),
            err.group,
            err.option,
        ) from err
    if setup_logging:
        _setup_logging(conf, prog, sources)
    return conf


def _not_utf8(argv: Sequence[str]) -> exception.ConfigError:
    for path in concurrency.config_files_from_argv(argv):
        try:
            with open(path, "rb") as f:
                data = f.read()
            data.decode("utf-8")
        except UnicodeDecodeError as err:
            line = data.count(b"\n", 0, err.start) + 1
            return exception.ConfigError("line %d: not valid UTF-8 text" % line, path)
        except OSError:
            continue
    return exception.ConfigError("not valid UTF-8 text")


def _setup_logging(conf: cfg.ConfigOpts, prog: str, sources: OptionSources) -> None:
    try:
        from oslo_log import log as oslo_logging

        oslo_logging.setup(conf, "storaged")
    except (OSError, ValueError) as err:
        option = "log_config_append" if conf.log_config_append else "log_file"
        raise exception.ConfigError(
            "cannot set up logging: %s" % err, sources.where(None, option),
            "DEFAULT", option,
        ) from err
    concurrency.share_logging_locks()
    LOG.debug("%s starting with configuration files %s", prog, sources.files)


def mask_value(opt: cfg.Opt, value: Any) -> Any:
    """Return ``value`` fit to show: secrets masked, URLs without passwords."""
    if not opt.secret or value in (None, ""):
        return value
    if isinstance(value, str) and "://" in value:
        parts = urlparse.urlsplit(value)
        if parts.password is None:
            return value
        netloc = parts.netloc.rsplit("@", 1)
        user = parts.username or ""
        masked = "%s:***@%s" % (user, netloc[-1])
        return urlparse.urlunsplit(parts._replace(netloc=masked))
    return "***"


def effective_config(conf: cfg.ConfigOpts) -> dict[str, dict[str, Any]]:
    """Return every option's effective value by section, secrets masked."""
    result: dict[str, dict[str, Any]] = {}
    for group, name in _iter_values(conf):
        opts = conf._opts if group is None else conf._groups[group]._opts
        opt = opts[name]["opt"]
        if opt.positional:
            continue
        value = conf[name] if group is None else conf[group][name]
        if isinstance(value, cfg.ConfigOpts.SubCommandAttr):
            continue
        result.setdefault(group or "DEFAULT", {})[name] = mask_value(opt, value)
    return result


#: where the configuration came from, said apart from the option values
_FILE_OPTIONS = frozenset({"config_file", "config_dir"})


def _default_value(conf: cfg.ConfigOpts, opt: cfg.Opt, group: str | None) -> Any:
    """Return what ``opt`` would be without any file: its default, evaluated.

    The default is substituted (``$state_path``) and converted to the
    option's type the way oslo.config does it when reading the option.
    """
    if opt.default is None:
        return None
    # NOTE: oslo.config has no public way to evaluate a default; these are
    # the two steps its own option lookup takes.
    try:
        value = conf._substitute(opt.default, group=group)
        return conf._convert_value(value, opt)
    except Exception:  # an odd default: compare it as written
        return opt.default


def changed_config(conf: cfg.ConfigOpts) -> dict[str, dict[str, Any]]:
    """Return the options whose value differs from their default, masked.

    What an operator set on purpose: a file (or the command line) that only
    spells out a default is not a change.  Options without a default (the
    ``[api] user_*`` entries) count when set.
    """
    result: dict[str, dict[str, Any]] = {}
    for group, name in _iter_values(conf):
        opts = conf._opts if group is None else conf._groups[group]._opts
        opt = opts[name]["opt"]
        if opt.positional or (group is None and name in _FILE_OPTIONS):
            continue
        value = conf[name] if group is None else conf[group][name]
        if isinstance(value, cfg.ConfigOpts.SubCommandAttr):
            continue
        if value == _default_value(conf, opt, group):
            continue
        result.setdefault(group or "DEFAULT", {})[name] = mask_value(opt, value)
    return result


def run_command(prog: str, body: Callable[[], int]) -> int:
    """Run a command's body; turn a configuration error into one line, exit 2.

    :returns: the exit status to hand to ``sys.exit``.
    """
    try:
        return body()
    except exception.ConfigError as err:
        print("%s: %s" % (prog, err), file=sys.stderr)
        return EXIT_CONFIG
    except KeyboardInterrupt:
        return 130
