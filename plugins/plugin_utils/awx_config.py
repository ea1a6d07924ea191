# -*- coding: utf-8 -*-
"""The AWX controller configuration as data (awx/controller/*.yml), checked without a controller.

``validate`` returns every problem as a message naming the file, the object, the option and what is
allowed; an empty list means the data would be accepted by the awx.awx modules that apply it
(playbooks/awx/configure.yml) and is sound as a rollout:

* options: each object against the DOCUMENTATION of its awx.awx module, read from the installed
  collection (parsed, never imported): unknown options, wrong types, values outside the choices,
  missing required options, suboptions included (workflow nodes and their edges).
* references: organizations, projects, inventories, credentials, credential types and templates
  named by another object exist in the data (or are built into AWX).
* secrets: a credential's secret input is a placeholder rendered when the data is applied, never a
  literal; an injector uses only its type's inputs.
* surveys: each job template's survey asks exactly what its playbook takes from a person
  (awx/launch_variables.yml), typed alike; that declaration is itself held against the playbooks'
  source, so a variable the playbook no longer reads, or a default that moved, is found.
* workflows: node identifiers unique, edges to existing nodes, no cycle, approval timeouts above 0,
  node and schedule prompts the template accepts, and every node whose playbook changes hosts has a
  way to the rollback on failure: a failure edge to it, or to an approval node whose failure (denied,
  timed out) edge leads to it.
"""

from __future__ import annotations

import ast
import functools
import os
import pathlib
import re

import ansible_collections
import yaml

# Which awx.awx module applies each variable's objects (infra.aap_configuration's names).
OBJECT_MODULES = {
    'controller_organizations': 'organization',
    'controller_execution_environments': 'execution_environment',
    'controller_projects': 'project',
    'controller_inventories': 'inventory',
    'controller_inventory_sources': 'inventory_source',
    'controller_credential_types': 'credential_type',
    'controller_credentials': 'credential',
    'controller_templates': 'job_template',
    'controller_workflows': 'workflow_job_template',
    'controller_schedules': 'schedule',
}
LAUNCH_VARIABLES = 'fleetwave_launch_variables'
CONFIGURE_PLAYBOOK = 'playbooks/awx/configure.yml'

# Credential types every AWX has, and the inputs of those that are secrets.
BUILTIN_CREDENTIAL_TYPES = {'Machine', 'Source Control', 'Vault', 'Container Registry', 'GitHub Personal Access Token'}
BUILTIN_SECRET_INPUTS = {'password', 'ssh_key_data', 'ssh_key_unlock', 'become_password', 'vault_password', 'token'}

# What AWX offers for each kind of variable a playbook takes.
SURVEY_TYPES = {
    'str': {'text', 'textarea', 'password', 'multiplechoice'},
    'bool': {'multiplechoice'},
    'int': {'integer'},
    'float': {'float', 'integer'},
    'list': {'multiselect'},
}
EDGES = ('success_nodes', 'failure_nodes', 'always_nodes')
# Schedule and workflow-node prompts, and the job template option that must allow each.
PROMPTS = {
    'job_type': 'ask_job_type_on_launch', 'diff_mode': 'ask_diff_mode_on_launch', 'limit': 'ask_limit_on_launch',
    'inventory': 'ask_inventory_on_launch', 'job_tags': 'ask_tags_on_launch', 'skip_tags': 'ask_skip_tags_on_launch',
    'verbosity': 'ask_verbosity_on_launch', 'forks': 'ask_forks_on_launch', 'timeout': 'ask_timeout_on_launch',
}


class Unsafe(str):
    """A string tagged ``!unsafe``: Ansible passes it on as it is (an AWX injector template)."""


class _DataLoader(yaml.SafeLoader):
    """YAML as include_vars reads it, ``!unsafe`` included."""


_DataLoader.add_constructor('!unsafe', lambda loader, node: Unsafe(loader.construct_scalar(node)))


def _read_yaml(path):
    with open(path, encoding='utf-8') as handle:
        return yaml.load(handle, Loader=_DataLoader) or {}  # noqa: S506 - a SafeLoader with one scalar tag


def load_data(folder):
    """{variable: (file, objects)} of every ``controller_*`` variable in ``folder``'s YAML files."""
    data = {}
    for path in sorted(pathlib.Path(folder).glob('*.yml')):
        for variable, objects in _read_yaml(path).items():
            data[variable] = (str(path), objects)
    return data


def load_launch_variables(path):
    return _read_yaml(path).get(LAUNCH_VARIABLES, {})


def find_collection(name='awx.awx', paths=None):
    """The folder of an installed collection: in ``paths``, the user's and the system's collection
    folders, then where Python finds the ansible_collections namespace (pip's ansible package)."""
    namespace, collection = name.split('.')
    search = list(paths or []) + [os.path.expanduser('~/.ansible/collections'), '/usr/share/ansible/collections']
    # Where Python finds collections (pip's ansible package installs them there): the namespace's folders.
    search += [str(pathlib.Path(folder).parent) for folder in ansible_collections.__path__]
    for root in search:
        folder = pathlib.Path(root or '.') / 'ansible_collections' / namespace / collection
        if (folder / 'plugins' / 'modules').is_dir():
            return folder
    raise FileNotFoundError('collection %s is not installed (searched %s)' % (name, ', '.join(map(str, search))))


@functools.lru_cache(maxsize=None)
def module_options(collection_dir, module):
    """The options a module documents (DOCUMENTATION, read from its source without importing it)."""
    source = pathlib.Path(collection_dir, 'plugins', 'modules', module + '.py').read_text(encoding='utf-8')
    for node in ast.parse(source).body:
        if isinstance(node, ast.Assign) and any(getattr(t, 'id', None) == 'DOCUMENTATION' for t in node.targets):
            return yaml.safe_load(node.value.value).get('options') or {}
    raise ValueError('%s has no DOCUMENTATION' % module)


# --- options against the argument specs ---------------------------------------------------------

def _templated(value):
    """A value Ansible renders when the data is applied: its type is known only then."""
    return isinstance(value, str) and not isinstance(value, Unsafe) and '{{' in value


def _type_problem(value, spec):
    kind = spec.get('type', 'str')
    if _templated(value):
        return None
    expected = {
        'str': lambda v: isinstance(v, str),
        'int': lambda v: isinstance(v, int) and not isinstance(v, bool),
        'float': lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
        'bool': lambda v: isinstance(v, bool),
        'dict': lambda v: isinstance(v, dict),
        'list': lambda v: isinstance(v, list),
    }.get(kind)
    if expected and not expected(value):
        return 'must be of type %s, got %s %r' % (kind, type(value).__name__, value)
    return None


def _node_label(item, index):
    if isinstance(item, dict):
        for key in ('identifier', 'name', 'question_name', 'id'):
            if item.get(key):
                return '[%s]' % item[key]
    return '[%d]' % index


def check_options(values, options, where, module):
    """Problems of one object (or suboption dict) against its documented options."""
    problems = []
    names = {}
    for option, spec in options.items():
        names[option] = option
        for alias in spec.get('aliases') or []:
            names[alias] = option
    for key, value in values.items():
        if key not in names:
            problems.append('%s: unknown option %s; awx.awx.%s takes: %s' % (where, key, module, ', '.join(sorted(options))))
            continue
        spec = options[names[key]]
        problems.extend(_check_value(value, spec, '%s: option %s' % (where, key), module))
    for option, spec in options.items():
        if spec.get('required') and not any(k in values for k, o in names.items() if o == option):
            problems.append('%s: missing required option %s' % (where, option))
    return problems


def _check_value(value, spec, where, module):
    problem = _type_problem(value, spec)
    if problem:
        return ['%s %s' % (where, problem)]
    if _templated(value):
        return []
    problems = []
    items = value if isinstance(value, list) else [value]
    choices = spec.get('choices')
    if choices:
        problems += ['%s: %r is not one of %s' % (where, item, ', '.join(map(repr, choices)))
                     for item in items if item not in choices]
    elements = spec.get('elements')
    if isinstance(value, list) and elements:
        problems += ['%s%s %s' % (where, _node_label(item, i), problem) for i, item in enumerate(value)
                     for problem in [_type_problem(item, {'type': elements})] if problem]
    suboptions = spec.get('suboptions')
    if suboptions:
        if isinstance(value, dict):
            problems += check_options(value, suboptions, where, module)
        elif isinstance(value, list):
            for i, item in enumerate(value):
                if isinstance(item, dict):
                    problems += check_options(item, suboptions, where + _node_label(item, i), module)
    return problems


# --- the whole configuration --------------------------------------------------------------------

class _Config:
    """The loaded data with what the checks look up in it."""

    def __init__(self, data, playbooks, project_root):
        self.data, self.playbooks, self.root = data, playbooks, pathlib.Path(project_root)

    def objects(self, variable):
        path, objects = self.data.get(variable, ('', []))
        return [(self.relative(path), obj) for obj in objects or [] if isinstance(obj, dict)]

    def names(self, variable):
        return {obj.get('name') for _, obj in self.objects(variable)}

    def relative(self, path):
        try:
            return str(pathlib.Path(path).resolve().relative_to(self.root.resolve()))
        except ValueError:
            return str(path)


def _where(path, variable, obj):
    return "%s: %s '%s'" % (path, variable, obj.get('name') if isinstance(obj, dict) else obj)


def validate(data_dir, launch_variables_file, project_root, collection_dir=None, data=None, playbooks=None):
    """Every problem of the configuration; ``data`` and ``playbooks`` replace what the files hold
    (the tests pass broken copies)."""
    config = _Config(load_data(data_dir) if data is None else data,
                     load_launch_variables(launch_variables_file) if playbooks is None else playbooks,
                     project_root)
    collection_dir = pathlib.Path(collection_dir or find_collection())
    problems = []
    for variable, (path, objects) in sorted(config.data.items()):
        module = OBJECT_MODULES.get(variable)
        if module is None:
            problems.append('%s: %s is not a controller object type; known: %s'
                            % (config.relative(path), variable, ', '.join(sorted(OBJECT_MODULES))))
            continue
        options = module_options(collection_dir, module)
        for obj in objects or []:
            problems += check_options(obj, options, _where(config.relative(path), variable, obj), module)
    problems += _check_references(config)
    problems += _check_credentials(config)
    problems += _check_launch_variables(config)
    problems += _check_surveys(config)
    problems += _check_workflows(config)
    problems += _check_schedules(config)
    problems += _check_applied(config, pathlib.Path(project_root, CONFIGURE_PLAYBOOK))
    return problems


def _check_references(config):
    problems = []
    organizations = config.names('controller_organizations')
    projects, inventories = config.names('controller_projects'), config.names('controller_inventories')
    credentials = config.names('controller_credentials')
    environments = config.names('controller_execution_environments')
    credential_types = config.names('controller_credential_types') | BUILTIN_CREDENTIAL_TYPES
    wanted = {
        'organization': organizations, 'project': projects, 'source_project': projects, 'inventory': inventories,
        'credential_type': credential_types, 'execution_environment': environments, 'default_environment': environments,
    }
    for variable in OBJECT_MODULES:
        for path, obj in config.objects(variable):
            for option, known in wanted.items():
                name = obj.get(option)
                if isinstance(name, str) and name not in known:
                    problems.append('%s: option %s names %r, which the data does not define (defined: %s)'
                                    % (_where(path, variable, obj), option, name, ', '.join(sorted(known))))
            for name in obj.get('credentials') or [] if variable == 'controller_templates' else []:
                if name not in credentials:
                    problems.append('%s: option credentials names %r, which the data does not define (defined: %s)'
                                    % (_where(path, variable, obj), name, ', '.join(sorted(credentials))))
    return problems


def _check_credentials(config):
    problems = []
    fields = {}
    for path, kind in config.objects('controller_credential_types'):
        ids = {f.get('id'): f for f in (kind.get('inputs') or {}).get('fields') or []}
        fields[kind.get('name')] = ids
        for injector, values in (kind.get('injectors') or {}).items():
            for key, template in (values or {}).items():
                for used in re.findall(r'\{\{\s*(\w+)', str(template)):
                    if used not in ids:
                        problems.append('%s: injectors.%s.%s uses %s, not an input of this type (inputs: %s)'
                                        % (_where(path, 'controller_credential_types', kind), injector, key, used,
                                           ', '.join(sorted(ids))))
    for path, credential in config.objects('controller_credentials'):
        kind = fields.get(credential.get('credential_type'))
        for key, value in (credential.get('inputs') or {}).items():
            secret = (kind or {}).get(key, {}).get('secret') if kind is not None else key in BUILTIN_SECRET_INPUTS
            if kind is not None and key not in kind:
                problems.append('%s: inputs.%s is not an input of credential type %r (inputs: %s)'
                                % (_where(path, 'controller_credentials', credential), key,
                                   credential.get('credential_type'), ', '.join(sorted(kind))))
            elif secret and not _templated(value):
                problems.append('%s: inputs.%s is a secret written as a literal; it must be a placeholder rendered '
                                'when the data is applied (a lookup of the environment or of vault)'
                                % (_where(path, 'controller_credentials', credential), key))
    return problems


# --- playbooks and their surveys ----------------------------------------------------------------

def _playbook_sources(root, playbook):
    """The playbook and every file it brings in: imported playbooks, included task files, and the
    files of this collection's roles it calls (fleetwave.rollout.<role>)."""
    seen, todo = [], [root / playbook]
    while todo:
        path = todo.pop()
        if path in seen or not path.is_file():
            continue
        seen.append(path)
        text = _code(path.read_text(encoding='utf-8'))
        for role in re.findall(r'fleetwave\.rollout\.(\w+)', text):
            todo += sorted((root / 'roles' / role).glob('**/*.yml'))
        for name in re.findall(r'[\w./-]+\.yml', text):
            todo += [base / name for base in (path.parent, root / 'playbooks')]
    return seen


def _code(text):
    """The text without its comment lines (a variable named only in a comment is not read)."""
    return '\n'.join(line for line in text.splitlines() if not line.lstrip().startswith('#'))


def _check_launch_variables(config):
    problems = []
    where_map = 'awx/launch_variables.yml: %s' % LAUNCH_VARIABLES
    for playbook, declared in sorted(config.playbooks.items()):
        path = config.root / playbook
        if not path.is_file():
            problems.append('%s: %s does not exist' % (where_map, playbook))
            continue
        sources = _playbook_sources(config.root, playbook)
        code = '\n'.join(_code(p.read_text(encoding='utf-8')) for p in sources)
        variables = declared.get('variables') or {}
        for variable, spec in sorted(variables.items()):
            if not re.search(r'\b%s\b' % re.escape(variable), code):
                problems.append('%s: %s takes %s, but neither it nor a file it includes reads it'
                                % (where_map, playbook, variable))
            if spec.get('type') not in SURVEY_TYPES:
                problems.append('%s: %s variable %s has type %r; one of %s'
                                % (where_map, playbook, variable, spec.get('type'), ', '.join(SURVEY_TYPES)))
            default_in = spec.get('default_in')
            if default_in:
                text = (config.root / default_in).read_text(encoding='utf-8') if (config.root / default_in).is_file() else ''
                if not re.search(r'(^%s:|\b%s \| default\()' % ((re.escape(variable),) * 2), _code(text), re.M):
                    problems.append('%s: %s variable %s: %s gives it no default' % (where_map, playbook, variable, default_in))
        # The usage lines of its header: `-e name=value` or `-e '{"name": ...}'`.
        documented = re.findall(r'''-e\s+(?:'\{"(\w+)"|(\w+)=)''', path.read_text(encoding='utf-8'))
        for variable in sorted({quoted or assigned for quoted, assigned in documented}):
            if variable not in variables:
                problems.append('%s: %s documents -e %s, which is not declared for it' % (where_map, playbook, variable))
    return problems


def _survey_questions(template):
    spec = template.get('survey_spec') or {}
    return spec.get('spec') or [] if isinstance(spec, dict) else []


def _choices_in(root, source):
    """The flow list ``variable: [a, b]`` of a file (the values a playbook accepts), or None."""
    if not source:
        return None
    path = root / source['file']
    text = _code(path.read_text(encoding='utf-8')) if path.is_file() else ''
    found = re.search(r'^\s*%s:\s*(\[[^\]]*\])' % re.escape(source['variable']), text, re.M)
    return yaml.safe_load(found.group(1)) if found else []


def _check_surveys(config):
    problems = []
    for path, template in config.objects('controller_templates'):
        where = _where(path, 'controller_templates', template)
        playbook = template.get('playbook')
        declared = config.playbooks.get(playbook)
        if declared is None:
            problems.append('%s: playbook %s is not described in awx/launch_variables.yml (described: %s)'
                            % (where, playbook, ', '.join(sorted(config.playbooks))))
            continue
        takes = declared.get('variables') or {}
        questions = _survey_questions(template)
        if bool(template.get('survey_enabled')) != bool(questions):
            problems.append('%s: survey_enabled is %s but the survey has %d questions'
                            % (where, template.get('survey_enabled'), len(questions)))
        if not isinstance(template.get('timeout'), int) or template['timeout'] <= 0:
            problems.append('%s: timeout must be a number of seconds above 0, got %r' % (where, template.get('timeout')))
        asked = {}
        for question in questions:
            variable = question.get('variable')
            asked[variable] = question
            label = '%s: survey question %s' % (where, variable)
            missing = [k for k in ('question_name', 'variable', 'type', 'required') if k not in question]
            if missing:
                problems.append('%s: missing %s' % (label, ', '.join(missing)))
            if variable not in takes:
                problems.append('%s: %s does not take %s (it takes: %s)'
                                % (label, playbook, variable, ', '.join(sorted(takes)) or 'nothing from a survey'))
                continue
            allowed = SURVEY_TYPES.get(takes[variable].get('type'), set())
            if question.get('type') not in allowed:
                problems.append('%s: type %r for a %s; allowed: %s'
                                % (label, question.get('type'), takes[variable].get('type'), ', '.join(sorted(allowed))))
            choices = question.get('choices')
            if question.get('type') in ('multiplechoice', 'multiselect'):
                choices = choices.split('\n') if isinstance(choices, str) else choices or []
                defaults = str(question.get('default') or '').split('\n') if question.get('default') else []
                problems += ['%s: default %r is not one of its choices %s' % (label, d, ', '.join(choices))
                             for d in defaults if d not in choices]
                offered = _choices_in(config.root, takes[variable].get('choices_in'))
                if offered is not None and choices != offered:
                    problems.append('%s: choices %s, but %s offers %s'
                                    % (label, ', '.join(choices), takes[variable]['choices_in']['file'], ', '.join(offered)))
                if takes[variable].get('type') == 'bool' and sorted(choices) != ['false', 'true']:
                    problems.append('%s: a yes/no variable offers exactly "true" and "false", got %s' % (label, choices))
        for variable, spec in sorted(takes.items()):
            if variable not in asked:
                problems.append('%s: %s takes %s, but the survey does not ask it' % (where, playbook, variable))
            elif not spec.get('default_in') and not asked[variable].get('required'):
                problems.append('%s: %s needs %s (no default anywhere), but the survey question is not required'
                                % (where, playbook, variable))
    return problems


# --- workflows and schedules --------------------------------------------------------------------

def _check_prompts(where, values, template, survey_variables):
    """Prompts a schedule or workflow node gives a job template must be ones the template accepts."""
    problems = []
    for option, ask in PROMPTS.items():
        if option in values and not template.get(ask):
            problems.append('%s: sets %s, but template %r does not ask for it (%s)' % (where, option, template.get('name'), ask))
    for variable in values.get('extra_data') or {}:
        if variable not in survey_variables and not template.get('ask_variables_on_launch'):
            problems.append('%s: extra_data %s is not a question of template %r\'s survey (questions: %s)'
                            % (where, variable, template.get('name'), ', '.join(sorted(survey_variables)) or 'none'))
    return problems


def _templates(config):
    return {t.get('name'): t for _, t in config.objects('controller_templates')}


def _check_workflows(config):
    problems = []
    templates = _templates(config)
    for path, workflow in config.objects('controller_workflows'):
        where = _where(path, 'controller_workflows', workflow)
        nodes = {}
        for node in workflow.get('workflow_nodes') or []:
            identifier = node.get('identifier')
            if identifier in nodes:
                problems.append('%s: node identifier %s is used twice' % (where, identifier))
            nodes[identifier] = node
        edges = {i: {e: [t.get('identifier') for t in (n.get('related') or {}).get(e) or []] for e in EDGES}
                 for i, n in nodes.items()}
        for identifier, node in nodes.items():
            label = '%s: node %s' % (where, identifier)
            for edge, targets in edges[identifier].items():
                problems += ['%s: %s points to %s, which is not a node (nodes: %s)'
                             % (label, edge, t, ', '.join(sorted(map(str, nodes)))) for t in targets if t not in nodes]
            job = node.get('unified_job_template') or {}
            if job.get('type') == 'workflow_approval':
                if not isinstance(job.get('timeout'), int) or job['timeout'] <= 0:
                    problems.append('%s: approval timeout must be seconds above 0 (0 or none waits forever), got %r'
                                    % (label, job.get('timeout')))
            elif job.get('type') == 'job_template':
                template = templates.get(job.get('name'))
                if template is None:
                    problems.append('%s: job template %r is not in controller_templates' % (label, job.get('name')))
                    continue
                questions = {q.get('variable') for q in _survey_questions(template)}
                problems += _check_prompts(label, node, template, questions)
        cycle = _find_cycle(edges)
        if cycle:
            problems.append('%s: the nodes form a cycle: %s' % (where, ' -> '.join(cycle)))
        problems += _check_failure_paths(where, nodes, edges, templates, config.playbooks)
    return problems


def _find_cycle(edges):
    state, stack = {}, []

    def visit(node):
        state[node] = 'open'
        stack.append(node)
        for target in sorted({t for targets in edges.get(node, {}).values() for t in targets if t in edges}):
            if state.get(target) == 'open':
                return stack[stack.index(target):] + [target]
            if target not in state:
                found = visit(target)
                if found:
                    return found
        state[node] = 'done'
        stack.pop()
        return None

    for node in edges:
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def _check_failure_paths(where, nodes, edges, templates, playbooks):
    """Every node whose playbook changes hosts reaches the rollback when it fails: directly, or through
    an approval node whose failure (denied or timed out) edge leads to it."""
    def playbook_of(identifier):
        job = nodes[identifier].get('unified_job_template') or {}
        if job.get('type') != 'job_template':
            return None, {}
        playbook = (templates.get(job.get('name')) or {}).get('playbook')
        return playbook, playbooks.get(playbook) or {}

    def rollbacks(identifiers):
        return [i for i in identifiers if i in nodes and playbook_of(i)[1].get('rollback')]

    problems = []
    for identifier in nodes:
        playbook, declared = playbook_of(identifier)
        if not declared.get('changes_hosts') or declared.get('rollback'):
            continue
        direct = rollbacks(edges[identifier]['failure_nodes'])
        via_approval = [r for a in edges[identifier]['failure_nodes'] if a in nodes
                        and (nodes[a].get('unified_job_template') or {}).get('type') == 'workflow_approval'
                        for r in rollbacks(edges[a]['failure_nodes'])]
        if not direct + via_approval:
            problems.append('%s: node %s runs %s, which changes hosts, but has no failure edge to the rollback '
                            '(directly, or through an approval node whose failure edge leads to it)'
                            % (where, identifier, playbook))
        wave = pathlib.PurePath(playbook).stem
        for rollback in direct + via_approval:
            rolled = (nodes[rollback].get('extra_data') or {}).get('rollback_wave')
            if rolled and wave.startswith('wave') and rolled != wave:
                problems.append('%s: node %s runs %s, but its rollback node %s rolls back %s'
                                % (where, identifier, playbook, rollback, rolled))
    return problems


def _check_schedules(config):
    problems = []
    templates = _templates(config)
    workflows = config.names('controller_workflows')
    for path, schedule in config.objects('controller_schedules'):
        where = _where(path, 'controller_schedules', schedule)
        target = schedule.get('unified_job_template')
        if not re.search(r'\bRRULE:FREQ=', str(schedule.get('rrule', ''))) or 'DTSTART' not in str(schedule.get('rrule', '')):
            problems.append('%s: rrule must hold a DTSTART and an RRULE:FREQ=..., got %r' % (where, schedule.get('rrule')))
        if target in templates:
            questions = {q.get('variable') for q in _survey_questions(templates[target])}
            problems += _check_prompts(where, schedule, templates[target], questions)
        elif target not in workflows:
            problems.append('%s: unified_job_template %r is neither a template nor a workflow of the data' % (where, target))
    return problems


# --- what configure.yml passes -------------------------------------------------------------------

def _check_applied(config, playbook):
    """Each option the data sets is passed by configure.yml's task for its module, from the item's own
    option of that name: an option the task left out would be dropped without a word."""
    passed = {}
    for play in _read_yaml(playbook) or []:
        for task in play.get('tasks') or []:
            for key, args in task.items():
                if key.startswith('awx.awx.') and isinstance(args, dict):
                    passed[key[len('awx.awx.'):]] = args
    problems = []
    for module, args in sorted(passed.items()):
        problems += ['%s: awx.awx.%s option %s is given from item.%s' % (CONFIGURE_PLAYBOOK, module, option, read)
                     for option, value in args.items() for read in re.findall(r'item\.(\w+)', str(value)) if read != option]
    for variable, module in OBJECT_MODULES.items():
        for path, obj in config.objects(variable):
            if module not in passed:
                problems.append('%s: %s has no awx.awx.%s task to apply it' % (_where(path, variable, obj), CONFIGURE_PLAYBOOK, module))
                continue
            problems += ['%s: option %s is not passed by %s (its awx.awx.%s task passes: %s)'
                         % (_where(path, variable, obj), key, CONFIGURE_PLAYBOOK, module, ', '.join(sorted(passed[module])))
                         for key in obj if key not in passed[module]]
    return problems


# --- a workflow run as AWX runs it ---------------------------------------------------------------
# What the workflow rehearsal (tests/acceptance/test_workflow_rehearsal.py) needs to walk the data
# as AWX's workflow manager does, without a controller: which node runs next, and the extra vars of
# the job it starts.

def survey_refuses(question, value):
    """Why AWX's survey validation refuses ``value`` for ``question``, or None. AWX applies a survey
    default only when it passes this check: a multiselect default (written as lines) is not a list,
    so a job started without the survey (a workflow node, a schedule) does not get it."""
    kind, choices = question.get('type'), question.get('choices') or []
    choices = [c for c in choices.split('\n') if c.strip()] if isinstance(choices, str) else list(choices)
    if kind in ('text', 'textarea', 'password'):
        if not isinstance(value, str):
            return 'expected a string, got %r' % (value,)
        low, high = question.get('min'), question.get('max')
        if low not in ('', None) and len(value) < int(low):
            return 'shorter than %s characters' % low
        if high not in ('', None) and len(value) > int(high):
            return 'longer than %s characters' % high
    elif kind == 'integer' and (not isinstance(value, int) or isinstance(value, bool)):
        return 'expected an integer, got %r' % (value,)
    elif kind == 'float' and (not isinstance(value, (int, float)) or isinstance(value, bool)):
        return 'expected a number, got %r' % (value,)
    elif kind == 'multiselect':
        if not isinstance(value, list):
            return 'expected a list, got %r' % (value,)
        outside = [v for v in value if v not in choices]
        if outside:
            return '%s not among the choices %s' % (', '.join(map(str, outside)), ', '.join(choices))
    elif kind == 'multiplechoice' and value not in choices:
        return '%r is not one of %s' % (value, ', '.join(choices))
    return None


def job_extra_vars(template, extra_data=None, ancestor_artifacts=None, workflow_extra_vars=None):
    """The extra vars of the job a workflow node starts from ``template``, lowest precedence first:
    the template's own extra_vars; its survey's defaults that pass the survey's validation; the node's
    extra_data, of which AWX keeps what the survey asks (any variable when the template prompts for
    variables); the set_stats data of the node's ancestors; the workflow job's extra vars."""
    questions = {q.get('variable'): q for q in _survey_questions(template)} if template.get('survey_enabled') else {}
    values = dict(template.get('extra_vars') or {})
    values.update({name: q['default'] for name, q in questions.items()
                   if q.get('default') is not None and survey_refuses(q, q['default']) is None})
    values.update({name: value for name, value in (extra_data or {}).items()
                   if template.get('ask_variables_on_launch')
                   or (name in questions and survey_refuses(questions[name], value) is None)})
    values.update({k: v for k, v in (ancestor_artifacts or {}).items() if k != '_ansible_no_log'})
    values.update(workflow_extra_vars or {})
    return values


def run_workflow(data, name, run_job, approve, extra_vars=None):
    """Walk workflow ``name`` of the controller data (load_data) as AWX's workflow manager does, one
    node at a time. A node runs once every parent is settled and an edge of a parent that ran fires
    for it (all of them with all_parents_must_converge); the others never run.

    ``run_job(identifier, template, extra_vars)`` runs a job template's playbook and returns
    (succeeded, artifacts: its set_stats data); ``approve(identifier, approval)`` answers an approval
    node (False: denied, or timed out). Returns (status, steps): the workflow 'successful' or 'failed'
    (a node failed with no failure or always edge to take), and each node run, in order, as
    {'node', 'type', 'name', 'status', 'extra_vars' and 'artifacts' for jobs}."""
    workflows = {w.get('name'): w for w in data.get('controller_workflows', ('', []))[1] or []}
    if name not in workflows:
        raise KeyError('no workflow %r in the data (workflows: %s)' % (name, ', '.join(sorted(workflows))))
    workflow = workflows[name]
    templates = {t.get('name'): t for t in data.get('controller_templates', ('', []))[1] or []}
    nodes = {n['identifier']: n for n in workflow.get('workflow_nodes') or []}
    children = {i: {e: [t['identifier'] for t in (n.get('related') or {}).get(e) or []] for e in EDGES}
                for i, n in nodes.items()}
    parents = {i: [(p, edge) for p in nodes for edge in EDGES if i in children[p][edge]] for i in nodes}
    settled, carried, artifacts, steps = {}, {}, {}, []  # settled: status, or 'not run'
    while len(settled) < len(nodes):
        identifier = next((i for i in nodes if i not in settled and all(p in settled for p, _ in parents[i])), None)
        if identifier is None:
            raise ValueError('workflow %r: nodes %s wait on each other (a cycle)' % (name, ', '.join(i for i in nodes if i not in settled)))
        fired = [settled[p] != 'not run' and (edge == 'always_nodes' or (edge == 'success_nodes') == (settled[p] == 'successful'))
                 for p, edge in parents[identifier]]
        if parents[identifier] and not (all(fired) if nodes[identifier].get('all_parents_must_converge') else any(fired)):
            settled[identifier] = 'not run'
            continue
        # What the node's ancestors handed over: each parent's own, then its job's set_stats data.
        carried[identifier] = {}
        for parent, _ in parents[identifier]:
            carried[identifier].update(carried.get(parent) or {})
            carried[identifier].update(artifacts.get(parent) or {})
        job = nodes[identifier].get('unified_job_template') or {}
        step = {'node': identifier, 'type': job.get('type'), 'name': job.get('name')}
        if job.get('type') == 'workflow_approval':
            step['status'] = 'successful' if approve(identifier, job) else 'failed'
        else:
            template = templates[job.get('name')]
            step['extra_vars'] = job_extra_vars(template, nodes[identifier].get('extra_data'),
                                                carried[identifier], extra_vars)
            succeeded, step['artifacts'] = run_job(identifier, template, step['extra_vars'])
            artifacts[identifier] = step['artifacts'] or {}
            step['status'] = 'successful' if succeeded else 'failed'
        settled[identifier] = step['status']
        steps.append(step)
    unhandled = [s['node'] for s in steps if s['status'] == 'failed'
                 and not children[s['node']]['failure_nodes'] + children[s['node']]['always_nodes']]
    return ('failed' if unhandled else 'successful'), steps
