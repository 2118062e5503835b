"""The widget's script.js: an AMD module amoCRM's widget loader runs in the account's pages.

Doc: developers.kommo.com/docs/script-js (callbacks render, init, bind_actions, settings, onSave,
destroy, advancedSettings; `self.system().area`, `self.render_template`, `self.i18n`,
`self.get_settings()`); developers.kommo.com/docs/one-time-tokens (`self.$authorizedAjax`). In a
card (lcard, ccard, comcard) and on the advanced settings page the script asks our server for the
page's address with the one-time token, then shows that page in a frame. `__BASE_URL__` is our
`serve` address, filled in when the archive is built.
"""

SCRIPT = r"""define([], function () {
  'use strict';
  var BASE = '__BASE_URL__';
  var CARDS = {lcard: true, ccard: true, comcard: true};

  return function () {
    var self = this;

    function words() {
      return self.i18n('widget') || {};
    }

    function lang() {
      var system = typeof self.system === 'function' ? self.system() : {};
      return system && system.lang === 'en' ? 'en' : 'ru';
    }

    // ask our server for the page address: $authorizedAjax adds the one-time token (X-Auth-Token)
    function open(place, box, extra) {
      if (!box) { return; }
      box.textContent = words().loading || '';
      var data = {place: place, lang: lang(), entity: '', id: ''};
      Object.keys(extra || {}).forEach(function (k) { data[k] = extra[k]; });
      self.$authorizedAjax({url: BASE + '/amocrm/widget/session', method: 'POST', dataType: 'json', data: data})
        .done(function (answer) {
          var frame = document.createElement('iframe');
          frame.src = answer.url;
          frame.className = 'rs-frame';
          frame.title = words().name || 'repeat-sales';
          frame.style.cssText = 'width:100%;border:0;height:' + (place === 'card' ? '480px' : '860px');
          box.textContent = '';
          box.appendChild(frame);
        })
        .fail(function () {
          box.textContent = words().failed || 'failed';
          box.className += ' rs-failed';
        });
    }

    this.callbacks = {
      init: function () { return true; },
      bind_actions: function () { return true; },
      render: function () {
        var area = typeof self.system === 'function' ? self.system().area : '';
        if (!CARDS[area]) { return true; }
        self.render_template({caption: {class_name: 'rs-caption'}, body: '',
                              render: '<div class="rs-card" data-rs-area="' + area + '"></div>'});
        var card = (window.AMOCRM && AMOCRM.data && AMOCRM.data.current_card) || {};
        open('card', document.querySelector('.rs-card[data-rs-area="' + area + '"]'),
             {entity: area, id: card.id ? String(card.id) : ''});
        return true;
      },
      settings: function () { return true; },
      advancedSettings: function () {
        var code = self.get_settings().widget_code;
        open('settings', document.getElementById('work-area-' + code));
        return true;
      },
      onSave: function () { return true; },
      destroy: function () { return true; }
    };
    return this;
  };
});
"""
