"""The job factories page: names, classes and the defaults each job gets.
"""
from pyramid.view import view_defaults

from m01.remote import interfaces
from m01.remote.job import jobClassKey
from m01.remote.views.common import BaseView, remote_view, template


@view_defaults(context=interfaces.IJobFactoryContainer,
               renderer=template('factories'))
class FactoriesView(BaseView):

    section = 'factories'

    @remote_view(request_method='GET')
    def list(self):
        factories = []
        for name, factory in self.context.items():
            defaults = factory.dump()
            # The name and class have columns of their own; the fields a
            # subclass declares are shown beside the base ones.
            for key in ('name', 'jobClass'):
                defaults.pop(key, None)
            defaults.update(defaults.pop('data', None) or {})
            factories.append({'name': name,
                              'className': jobClassKey(type(factory)),
                              'doc': _summary(type(factory).__doc__),
                              'defaults': sorted(defaults.items())})
        return {'title': 'Job factories', 'factories': factories}


def _summary(doc):
    """The first paragraph of a docstring."""
    text = ' '.join((doc or '').strip().split('\n\n')[0].split())
    # reStructuredText literals read better without their quotes here.
    return text.replace('``', '')
