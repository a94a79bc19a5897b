"""The job factories page: names, classes, the defaults each job gets,
and pausing or resuming a factory."""
import dataclasses

from pyramid.view import view_defaults

from m01.remote import interfaces
from m01.remote.views.common import BaseView, remote_view, template


@view_defaults(context=interfaces.IJobFactoryContainer,
               renderer=template('factories'))
class FactoriesView(BaseView):

    section = 'factories'

    @remote_view(request_method='GET')
    def list(self):
        factories = [dict(dataclasses.asdict(info),
                          url=self.url(self.context, info.name))
                     for info in self.queries.factories()]
        return {'title': 'Job factories', 'factories': factories}


@view_defaults(context=interfaces.IJob,
               containment=interfaces.IJobFactoryContainer)
class FactoryView(BaseView):

    section = 'factories'

    def _switch(self, change, message):
        name = self.context.__name__
        try:
            change(name)
        except KeyError:
            self.flash('There is no job factory %s any more.' % name,
                       'error')
        else:
            self.flash(message % name)
        return self.redirect(self.context.__parent__)

    @remote_view(name='pause', request_method='POST', require_csrf=True)
    def pause(self):
        return self._switch(self.actions.pauseFactory,
                            'Job factory %s paused: its jobs wait.')

    @remote_view(name='resume', request_method='POST', require_csrf=True)
    def resume(self):
        return self._switch(self.actions.resumeFactory,
                            'Job factory %s resumed.')
