"""plugins/plugin_utils/awx_config.py: the AWX controller configuration (awx/controller/*.yml and
awx/launch_variables.yml) checked without a controller. The shipped data validates clean; each
deliberately broken copy fails naming its problem - a wrong module option, type or choice, a missing
failure edge, a cycle, an approval that waits forever, a survey variable the playbook does not take,
a playbook variable the survey does not ask - so the checks can fail. The argument specs are the
installed awx.awx collection's own."""

from __future__ import annotations

import copy

import pytest
from ansible_collections.fleetwave.rollout.plugins.plugin_utils import awx_config

from tests.unit.conftest import REPO

pytestmark = pytest.mark.unit

DATA_DIR = REPO / 'awx' / 'controller'
LAUNCH_VARIABLES = REPO / 'awx' / 'launch_variables.yml'
TEMPLATES = "awx/controller/templates.yml: controller_templates"
WORKFLOW = "awx/controller/workflows.yml: controller_workflows 'fleetwave waves'"
VARIABLES = "awx/launch_variables.yml: fleetwave_launch_variables"


@pytest.fixture(scope='module')
def shipped():
    return awx_config.load_data(DATA_DIR), awx_config.load_launch_variables(LAUNCH_VARIABLES)


@pytest.fixture(scope='module')
def collection():
    return awx_config.find_collection()


def problems_of(shipped, collection, edit):
    """The problems of a copy of the shipped data after ``edit(objects, playbooks)``."""
    data, playbooks = copy.deepcopy(shipped)
    objects = {variable: entries for variable, (_, entries) in data.items()}
    edit(objects, playbooks)
    return awx_config.validate(DATA_DIR, LAUNCH_VARIABLES, REPO, collection, data=data, playbooks=playbooks)


def named(objects, variable, name):
    return next(obj for obj in objects[variable] if obj['name'] == name)


def node(objects, identifier):
    nodes = named(objects, 'controller_workflows', 'fleetwave waves')['workflow_nodes']
    return next(n for n in nodes if n['identifier'] == identifier)


def question(objects, template, variable):
    spec = named(objects, 'controller_templates', template)['survey_spec']['spec']
    return next(q for q in spec if q['variable'] == variable)


# --- the shipped configuration --------------------------------------------------------------------

def test_shipped_configuration_is_clean(collection):
    assert awx_config.validate(DATA_DIR, LAUNCH_VARIABLES, REPO, collection) == []


def test_every_object_type_has_data_and_a_module(shipped):
    data, _ = shipped
    assert set(data) == set(awx_config.OBJECT_MODULES)


def test_argument_specs_come_from_the_installed_collection(collection):
    options = awx_config.module_options(collection, 'job_template')
    assert options['timeout']['type'] == 'int'
    assert options['job_type']['choices'] == ['run', 'check']
    nodes = awx_config.module_options(collection, 'workflow_job_template')['workflow_nodes']
    assert nodes['suboptions']['identifier']['required'] is True
    assert set(nodes['suboptions']['related']['suboptions']) >= {'success_nodes', 'failure_nodes', 'always_nodes'}


def test_the_wave_workflow_runs_waves_with_approvals_between_them(shipped):
    data, _ = shipped
    workflow = data['controller_workflows'][1][0]
    success = {n['identifier']: [t['identifier'] for t in n.get('related', {}).get('success_nodes', [])]
               for n in workflow['workflow_nodes']}
    path, here = [], 'wave1'
    while here:
        path.append(here)
        here = (success[here] or [None])[0]
    assert path == ['wave1', 'approve-wave2', 'wave2-phase1', 'approve-wave2-phase2', 'wave2', 'approve-wave3', 'wave3', 'readiness', 'sign-off']


def test_the_playbook_sources_include_imported_playbooks_and_roles():
    sources = {str(p.relative_to(REPO)) for p in awx_config._playbook_sources(REPO, 'playbooks/wave2.yml')}
    assert {'playbooks/wave/preflight.yml', 'playbooks/wave/inconclusive.yml',
            'roles/wave_deploy/tasks/deploy.yml', 'roles/wave_rollback/tasks/prove.yml'} <= sources


# --- wrong module options -------------------------------------------------------------------------

def test_an_unknown_option_is_named_with_what_the_module_takes(shipped, collection):
    def edit(objects, _):
        named(objects, 'controller_templates', 'fleetwave wave 2')['job_timeout'] = 108000
    problems = problems_of(shipped, collection, edit)
    assert len(problems) == 2  # the module refuses it, and configure.yml would not pass it
    assert problems[0].startswith(f"{TEMPLATES} 'fleetwave wave 2': unknown option job_timeout; awx.awx.job_template "
                                  "takes: allow_simultaneous, ask_credential_on_launch,")
    assert problems[1].startswith(f"{TEMPLATES} 'fleetwave wave 2': option job_timeout is not passed by "
                                  "playbooks/awx/configure.yml")


def test_a_wrong_type_is_named(shipped, collection):
    def edit(objects, _):
        named(objects, 'controller_templates', 'fleetwave wave 2')['timeout'] = '30h'
    problems = problems_of(shipped, collection, edit)
    assert f"{TEMPLATES} 'fleetwave wave 2': option timeout must be of type int, got str '30h'" in problems


def test_a_missing_required_option_is_named(shipped, collection):
    def edit(objects, _):
        del named(objects, 'controller_credentials', 'fleetwave NATS')['credential_type']
    assert ("awx/controller/credentials.yml: controller_credentials 'fleetwave NATS': missing required option "
            "credential_type") in problems_of(shipped, collection, edit)


def test_a_wrong_suboption_of_a_workflow_node_is_named(shipped, collection):
    def edit(objects, _):
        related = node(objects, 'wave2')['related']
        related['on_failure'] = related.pop('failure_nodes')
    problems = problems_of(shipped, collection, edit)
    assert problems[0] == (f"{WORKFLOW}: option workflow_nodes[wave2]: option related: unknown option on_failure; "
                           "awx.awx.workflow_job_template takes: always_nodes, credentials, failure_nodes, "
                           "instance_groups, labels, success_nodes")


def test_an_option_configure_yml_does_not_pass_is_named(shipped, collection):
    def edit(objects, _):
        named(objects, 'controller_templates', 'fleetwave site')['forks'] = 5
    problems = problems_of(shipped, collection, edit)
    assert len(problems) == 1
    assert problems[0].startswith(f"{TEMPLATES} 'fleetwave site': option forks is not passed by "
                                  "playbooks/awx/configure.yml (its awx.awx.job_template task passes: allow_simultaneous,")


# --- one value changed, one problem ---------------------------------------------------------------

# Where the value is (a variable and an object's name, or a workflow node's identifier, then the keys),
# the value, and the one problem it must cause.
ONE_VALUE = {
    'a value outside the choices': (
        ('controller_schedules', 'fleetwave daily drift check', 'job_type'), 'preview',
        "awx/controller/schedules.yml: controller_schedules 'fleetwave daily drift check': option job_type: "
        "'preview' is not one of 'run', 'check'"),
    'a reference to an object the data lacks': (
        ('controller_templates', 'fleetwave rollback', 'inventory'), 'fleetwave staging',
        f"{TEMPLATES} 'fleetwave rollback': option inventory names 'fleetwave staging', which the data does not "
        "define (defined: fleetwave production, fleetwave sandbox)"),
    'a literal secret': (
        ('controller_credentials', 'fleetwave NATS', 'inputs', 'nats_password'), 'hunter2',
        "awx/controller/credentials.yml: controller_credentials 'fleetwave NATS': inputs.nats_password is a secret "
        "written as a literal; it must be a placeholder rendered when the data is applied (a lookup of the "
        "environment or of vault)"),
    'a schedule prompt the template does not ask': (
        ('controller_templates', 'fleetwave site', 'ask_job_type_on_launch'), False,
        "awx/controller/schedules.yml: controller_schedules 'fleetwave daily drift check': sets job_type, but "
        "template 'fleetwave site' does not ask for it (ask_job_type_on_launch)"),
    'the rollback of another wave': (
        ('node', 'rollback-wave3', 'extra_data', 'rollback_wave'), 'wave2',
        f"{WORKFLOW}: node wave3 runs playbooks/wave3.yml, but its rollback node rollback-wave3 rolls back wave2"),
    'node extra data outside the survey': (
        ('node', 'rollback-wave1', 'extra_data', 'rollback_hosts'), 'dgx-1',
        f"{WORKFLOW}: node rollback-wave1: extra_data rollback_hosts is not a question of template 'fleetwave "
        "rollback''s survey (questions: fleet_lock_force, rollback_agents, rollback_wave)"),
    'an approval timeout of 0': (
        ('node', 'approve-wave3', 'unified_job_template', 'timeout'), 0,
        f"{WORKFLOW}: node approve-wave3: approval timeout must be seconds above 0 (0 or none waits forever), got 0"),
    'an approval without a timeout': (
        ('node', 'approve-wave3', 'unified_job_template', 'timeout'), None,
        f"{WORKFLOW}: node approve-wave3: approval timeout must be seconds above 0 (0 or none waits forever), got None"),
}


@pytest.mark.parametrize('where, value, expected', ONE_VALUE.values(), ids=list(ONE_VALUE))
def test_one_wrong_value_is_named(shipped, collection, where, value, expected):
    def edit(objects, _):
        kind, name, *keys = where
        target = node(objects, name) if kind == 'node' else named(objects, kind, name)
        for key in keys[:-1]:
            target = target[key]
        target[keys[-1]] = value
    problems = problems_of(shipped, collection, edit)
    assert problems[-1:] == [expected]
    # None is not an int either: the module's argument spec refuses it first.
    assert len(problems) == (2 if value is None else 1)


# --- secrets --------------------------------------------------------------------------------------

def test_an_injector_of_an_input_the_type_lacks_is_named(shipped, collection):
    def edit(objects, _):
        kind = named(objects, 'controller_credential_types', 'fleetwave NATS')
        kind['injectors']['extra_vars']['vault_nats_password'] = '{{ nats_pass }}'
    assert problems_of(shipped, collection, edit) == [
        "awx/controller/credential_types.yml: controller_credential_types 'fleetwave NATS': "
        "injectors.extra_vars.vault_nats_password uses nats_pass, not an input of this type "
        "(inputs: nats_password, nats_user)"]


def test_an_unsafe_string_is_not_a_placeholder(shipped, collection):
    def edit(objects, _):
        inputs = named(objects, 'controller_credentials', 'fleetwave NATS')['inputs']
        inputs['nats_password'] = awx_config.Unsafe('{{ nats_password }}')
    problems = problems_of(shipped, collection, edit)
    assert len(problems) == 1
    assert "inputs.nats_password is a secret written as a literal" in problems[0]


# --- the workflow graph ---------------------------------------------------------------------------

def test_a_missing_failure_edge_is_named(shipped, collection):
    def edit(objects, _):
        del node(objects, 'wave2')['related']['failure_nodes']
    assert problems_of(shipped, collection, edit) == [
        f"{WORKFLOW}: node wave2 runs playbooks/wave2.yml, which changes hosts, but has no failure edge to the "
        "rollback (directly, or through an approval node whose failure edge leads to it)"]


def test_an_approval_after_a_failure_that_leads_nowhere_is_named(shipped, collection):
    def edit(objects, _):
        del node(objects, 'wave3-stopped')['related']
    assert problems_of(shipped, collection, edit) == [
        f"{WORKFLOW}: node wave3 runs playbooks/wave3.yml, which changes hosts, but has no failure edge to the "
        "rollback (directly, or through an approval node whose failure edge leads to it)"]


def test_a_direct_failure_edge_to_the_rollback_is_enough(shipped, collection):
    def edit(objects, _):
        node(objects, 'wave1')['related']['failure_nodes'] = [{'identifier': 'rollback-wave1'}]
    assert problems_of(shipped, collection, edit) == []


def test_a_cycle_is_named(shipped, collection):
    def edit(objects, _):
        node(objects, 'approve-wave3')['related']['success_nodes'].append({'identifier': 'wave1'})
    assert problems_of(shipped, collection, edit) == [
        f"{WORKFLOW}: the nodes form a cycle: wave1 -> approve-wave2 -> wave2-phase1 -> approve-wave2-phase2 -> wave2 "
        "-> approve-wave3 -> wave1"]


def test_an_edge_to_a_missing_node_is_named(shipped, collection):
    def edit(objects, _):
        node(objects, 'readiness')['related']['success_nodes'] = [{'identifier': 'signoff'}]
    problems = problems_of(shipped, collection, edit)
    assert len(problems) == 1
    assert problems[0].startswith(f"{WORKFLOW}: node readiness: success_nodes points to signoff, which is not a node "
                                  "(nodes: approve-wave2, approve-wave2-phase2, approve-wave3, readiness,")


def test_a_node_identifier_used_twice_is_named(shipped, collection):
    def edit(objects, _):
        node(objects, 'sign-off')['identifier'] = 'readiness'
    assert f"{WORKFLOW}: node identifier readiness is used twice" in problems_of(shipped, collection, edit)


# --- surveys against the playbooks ----------------------------------------------------------------

def test_a_survey_variable_the_playbook_does_not_take_is_named(shipped, collection):
    def edit(objects, _):
        spec = named(objects, 'controller_templates', 'fleetwave rollback')['survey_spec']['spec']
        spec.append(dict(question_name='Confirm', variable='rollback_confirm', type='text', required=True))
    assert problems_of(shipped, collection, edit) == [
        f"{TEMPLATES} 'fleetwave rollback': survey question rollback_confirm: playbooks/rollback.yml does not take "
        "rollback_confirm (it takes: fleet_lock_force, rollback_agents, rollback_wave)"]


def test_a_playbook_variable_the_survey_does_not_ask_is_named(shipped, collection):
    def edit(objects, _):
        spec = named(objects, 'controller_templates', 'fleetwave readiness')['survey_spec']['spec']
        spec[:] = [q for q in spec if q['variable'] != 'readiness_run']
    assert problems_of(shipped, collection, edit) == [
        f"{TEMPLATES} 'fleetwave readiness': playbooks/readiness.yml takes readiness_run, but the survey does not ask it"]


def test_a_required_playbook_variable_asked_as_optional_is_named(shipped, collection):
    def edit(objects, playbooks):
        del playbooks['playbooks/rollback.yml']['variables']['rollback_agents']['default_in']
    assert problems_of(shipped, collection, edit) == [
        f"{TEMPLATES} 'fleetwave rollback': playbooks/rollback.yml needs rollback_agents (no default anywhere), but "
        "the survey question is not required"]


def test_a_survey_type_unlike_the_variable_is_named(shipped, collection):
    def edit(objects, _):
        question(objects, 'fleetwave readiness', 'readiness_areas')['type'] = 'text'
    assert problems_of(shipped, collection, edit) == [
        f"{TEMPLATES} 'fleetwave readiness': survey question readiness_areas: type 'text' for a list; allowed: multiselect"]


def test_survey_choices_unlike_the_playbook_are_named(shipped, collection):
    def edit(objects, _):
        asked = question(objects, 'fleetwave readiness', 'readiness_areas')
        asked['choices'] = [c for c in asked['choices'] if c != 'reports']
        asked['default'] = '\n'.join(asked['choices'])
    problems = problems_of(shipped, collection, edit)
    assert len(problems) == 1
    assert problems[0].startswith(f"{TEMPLATES} 'fleetwave readiness': survey question readiness_areas: choices rollback-rehearsal, "
                                  "load, stress,")
    assert problems[0].endswith(", authorization, reports")


def test_a_default_outside_the_choices_is_named(shipped, collection):
    def edit(objects, _):
        question(objects, 'fleetwave rollback', 'fleet_lock_force')['default'] = 'yes'
    assert problems_of(shipped, collection, edit) == [
        f"{TEMPLATES} 'fleetwave rollback': survey question fleet_lock_force: default 'yes' is not one of its choices "
        "true, false"]


def test_a_declared_variable_the_playbook_does_not_read_is_named(shipped, collection):
    def edit(_, playbooks):
        playbooks['playbooks/site.yml']['variables']['site_confirm'] = {'type': 'str'}
    problems = problems_of(shipped, collection, edit)
    assert f"{VARIABLES}: playbooks/site.yml takes site_confirm, but neither it nor a file it includes reads it" in problems
    assert f"{TEMPLATES} 'fleetwave site': playbooks/site.yml takes site_confirm, but the survey does not ask it" in problems


def test_a_default_that_is_not_where_declared_is_named(shipped, collection):
    def edit(_, playbooks):
        playbooks['playbooks/readiness.yml']['variables']['readiness_areas']['default_in'] = 'playbooks/readiness.yml'
    assert problems_of(shipped, collection, edit) == [
        f"{VARIABLES}: playbooks/readiness.yml variable readiness_areas: playbooks/readiness.yml gives it no default"]


def test_a_variable_the_playbook_documents_but_the_map_lacks_is_named(shipped, collection):
    def edit(objects, playbooks):
        del playbooks['playbooks/rollback.yml']['variables']['fleet_lock_force']
        spec = named(objects, 'controller_templates', 'fleetwave rollback')['survey_spec']['spec']
        spec[:] = [q for q in spec if q['variable'] != 'fleet_lock_force']
        for identifier in ('rollback-wave1', 'rollback-wave2', 'rollback-wave3'):
            node(objects, identifier)['extra_data'].pop('fleet_lock_force', None)
    assert problems_of(shipped, collection, edit) == [
        f"{VARIABLES}: playbooks/rollback.yml documents -e fleet_lock_force, which is not declared for it"]


def test_a_template_whose_playbook_is_not_described_is_named(shipped, collection):
    def edit(objects, _):
        named(objects, 'controller_templates', 'fleetwave site')['playbook'] = 'playbooks/post-rollback.yml'
    assert problems_of(shipped, collection, edit) == [
        f"{TEMPLATES} 'fleetwave site': playbook playbooks/post-rollback.yml is not described in "
        "awx/launch_variables.yml (described: playbooks/post-rollback-check.yml, playbooks/readiness.yml, "
        "playbooks/rollback.yml, playbooks/site.yml, playbooks/wave1.yml, playbooks/wave2.yml, playbooks/wave3.yml)"]


# --- the workflow walked as AWX runs it ------------------------------------------------------------

class Controller:
    """Jobs and approvals answered by the test: each job's outcome and set_stats data by node."""

    def __init__(self, failing=(), denied=(), handed=None):
        self.failing, self.denied, self.handed, self.jobs = set(failing), set(denied), handed or {}, []

    def run_job(self, identifier, template, extra_vars):
        self.jobs.append((identifier, template['playbook'], extra_vars))
        return identifier not in self.failing, self.handed.get(identifier, {})

    def approve(self, identifier, approval):
        assert approval['timeout'] > 0
        return identifier not in self.denied


def walk(shipped, controller, extra_vars=None):
    data, _ = shipped
    return awx_config.run_workflow(data, 'fleetwave waves', controller.run_job, controller.approve, extra_vars)


def test_the_healthy_path_runs_every_wave_and_the_readiness_run_in_order(shipped):
    controller = Controller()
    status, steps = walk(shipped, controller)
    assert status == 'successful'
    assert [s['node'] for s in steps] == ['wave1', 'approve-wave2', 'wave2-phase1', 'approve-wave2-phase2', 'wave2', 'approve-wave3', 'wave3', 'readiness', 'sign-off']
    assert [playbook for _, playbook, _ in controller.jobs] == [
        'playbooks/wave1.yml', 'playbooks/wave2.yml', 'playbooks/wave2.yml', 'playbooks/wave3.yml', 'playbooks/readiness.yml']
    # Wave 2's first job pauses after phase 1; the second runs without the pause and resumes that run.
    assert steps[2]['extra_vars']['wave_pause_after_phase'] == 'phase1'
    assert 'wave_pause_after_phase' not in steps[4]['extra_vars']


def test_a_failed_wave_waits_for_a_person_and_a_denial_rolls_that_wave_back(shipped):
    controller = Controller(failing={'wave2'}, denied={'wave2-stopped'},
                            handed={'wave1': {'fleetwave_wave1': {'run_id': 'wave1-1', 'decision': 'GO'}},
                                    'wave2-phase1': {'fleetwave_wave2': {'run_id': 'wave2-1', 'paused_after': 'phase1'}},
                                    'wave2': {'fleetwave_wave2': {'run_id': 'wave2-1', 'lock_holder': 'wave2-1'}}})
    status, steps = walk(shipped, controller)
    assert [(s['node'], s['status']) for s in steps] == [
        ('wave1', 'successful'), ('approve-wave2', 'successful'), ('wave2-phase1', 'successful'),
        ('approve-wave2-phase2', 'successful'), ('wave2', 'failed'), ('wave2-stopped', 'failed'),
        ('rollback-wave2', 'successful')]
    # The failure was handled (its edge taken): AWX calls the workflow successful.
    assert status == 'successful'
    # Phase 2's job is handed the paused run; the rollback gets its node's answer and everything handed
    # over before it, through the approvals, the latest job's hand-over of a wave winning.
    assert steps[4]['extra_vars']['fleetwave_wave2'] == {'run_id': 'wave2-1', 'paused_after': 'phase1'}
    rollback = steps[-1]['extra_vars']
    assert rollback['rollback_wave'] == 'wave2'
    assert rollback['fleetwave_wave2'] == {'run_id': 'wave2-1', 'lock_holder': 'wave2-1'}
    assert rollback['fleetwave_wave1']['run_id'] == 'wave1-1'
    assert rollback['fleet_lock_force'] == 'false'  # the survey's default


def test_an_approved_stop_keeps_the_wave_and_ends_the_workflow(shipped):
    status, steps = walk(shipped, Controller(failing={'wave2'}))
    assert [s['node'] for s in steps][-2:] == ['wave2', 'wave2-stopped']
    assert status == 'successful'


def test_a_failed_first_job_of_wave2_skips_the_second_and_reaches_the_same_rollback(shipped):
    status, steps = walk(shipped, Controller(failing={'wave2-phase1'}, denied={'wave2-stopped'}))
    assert [s['node'] for s in steps] == ['wave1', 'approve-wave2', 'wave2-phase1', 'wave2-stopped', 'rollback-wave2']
    assert status == 'successful'


def test_a_failure_without_an_edge_fails_the_workflow(shipped):
    status, steps = walk(shipped, Controller(failing={'readiness'}))
    assert steps[-1]['node'] == 'readiness' and status == 'failed'


def test_a_denied_approval_on_the_success_path_runs_nothing_after_it(shipped):
    status, steps = walk(shipped, Controller(denied={'approve-wave3'}))
    assert [s['node'] for s in steps][-1] == 'approve-wave3'
    assert status == 'failed'


def test_extra_vars_follow_awx_precedence(shipped):
    data, _ = shipped
    [wave2] = [t for t in data['controller_templates'][1] if t['name'] == 'fleetwave wave 2']
    template = dict(wave2, extra_vars={'wave_resume': 'from the template', 'x': 'template'})
    values = awx_config.job_extra_vars(
        template, extra_data={'wave_criteria_file': 'criteria/node.yml', 'not_asked': 1},
        ancestor_artifacts={'fleetwave_wave1': {'run_id': 'r'}, 'wave_criteria_file': 'criteria/handed.yml',
                            '_ansible_no_log': True},
        workflow_extra_vars={'x': 'workflow'})
    # The survey's default beats the template's; the node's answer the default; the artifacts the node;
    # the workflow's extra vars everything. A variable the survey does not ask is dropped.
    assert values == {'wave_resume': 'true', 'x': 'workflow', 'wave_criteria_file': 'criteria/handed.yml',
                      'fleetwave_wave1': {'run_id': 'r'}}


def test_a_default_awx_refuses_is_not_applied(shipped):
    data, _ = shipped
    [readiness] = [t for t in data['controller_templates'][1] if t['name'] == 'fleetwave readiness']
    # A multiselect default is written as lines, not a list: launched from a node, the job gets none
    # and the playbook's own default (every area) applies.
    assert 'readiness_areas' not in awx_config.job_extra_vars(readiness)
    question = next(q for q in readiness['survey_spec']['spec'] if q['variable'] == 'readiness_areas')
    assert awx_config.survey_refuses(question, ['load', 'gates']) is None
    assert 'not among the choices' in awx_config.survey_refuses(question, ['load', 'soak'])
    assert 'expected a list' in awx_config.survey_refuses(question, question['default'])
    # A node's answer that the survey refuses is dropped too.
    assert 'readiness_areas' not in awx_config.job_extra_vars(readiness, extra_data={'readiness_areas': ['soak']})


def test_a_workflow_that_is_not_in_the_data_is_named(shipped):
    data, _ = shipped
    with pytest.raises(KeyError, match='fleetwave waves'):
        awx_config.run_workflow(data, 'no such workflow', None, None)
